"""The journal files under the search log (webapp.services.search_journal): no database here."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest

from webapp.services import search_journal
from webapp.services.search_journal import Journal, claim_orphans, split_lines


def test_a_torn_last_line_is_left_for_later():
    assert split_lines(b'{"a":1}\n{"b":2}\n{"c"') == ([b'{"a":1}', b'{"b":2}'], 16)
    assert split_lines(b"") == ([], 0) and split_lines(b"partial") == ([], 0)


def test_appended_lines_are_unwritten_until_marked(tmp_path):
    journal = Journal(str(tmp_path))
    journal.append(b"one\n")
    journal.append(b"two\n")
    data, end = journal.unwritten()
    assert data == b"one\ntwo\n" and end == 8
    journal.mark_written(4)
    journal.append(b"three\n")
    assert journal.unwritten() == (b"two\nthree\n", 14)
    journal.close(remove=True)
    assert os.listdir(tmp_path) == []


def test_a_fully_written_journal_starts_again_from_empty(tmp_path, monkeypatch):
    monkeypatch.setattr(search_journal, "ROTATE_BYTES", 8)
    journal = Journal(str(tmp_path))
    journal.append(b"0123456789\n")
    journal.mark_written(journal.unwritten()[1])
    assert os.path.getsize(journal.path) == 0 and journal.appended == journal.written == 0
    journal.append(b"next\n")  # O_APPEND: at the new end, not at the old offset
    assert journal.unwritten() == (b"next\n", 5)
    with open(journal.path, "rb") as f:
        assert f.read() == b"next\n"


def test_a_failed_append_leaves_no_partial_line(tmp_path, monkeypatch):
    journal = Journal(str(tmp_path))
    journal.append(b"kept\n")
    real_write = os.write

    def half_then_fail(fd, data):
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError):
        journal.append(b"lost line\n")
    monkeypatch.undo()
    journal.append(b"after\n")
    assert journal.unwritten()[0] == b"kept\nafter\n"


def test_a_live_journal_is_never_claimed(tmp_path):
    live = Journal(str(tmp_path))
    live.append(b"mine\n")
    # flock belongs to the open file, so this process's second open conflicts just as another process's would.
    assert list(claim_orphans(str(tmp_path), own=None)) == []
    assert list(claim_orphans(str(tmp_path), own=live.path)) == []
    assert os.path.exists(live.path)


def test_a_dead_processes_journal_is_claimed_once_and_removed_after_it_is_stored(tmp_path):
    script = (
        "import os, signal, sys\n"
        "from webapp.services.search_journal import Journal\n"
        "j = Journal(sys.argv[1]); j.append(b'a\\n'); j.append(b'b\\n')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    (path,) = tmp_path.iterdir()
    seen = []
    for orphan in claim_orphans(str(tmp_path), own=None):
        seen.append(orphan.read())
        # While claimed, nobody else can take it.
        fd = os.open(orphan.path, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    assert seen == [b"a\nb\n"] and not path.exists()


def test_an_orphan_that_could_not_be_stored_stays(tmp_path):
    journal = Journal(str(tmp_path))
    journal.append(b"x\n")
    os.close(journal.fd)  # as if its process died: the lock goes with the file description
    with pytest.raises(RuntimeError):
        for _orphan in claim_orphans(str(tmp_path), own=None):
            raise RuntimeError("database away")
    assert os.path.exists(journal.path)
    assert [o.read() for o in claim_orphans(str(tmp_path), own=None)] == [b"x\n"]
    assert not os.path.exists(journal.path)
