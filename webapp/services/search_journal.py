"""Append-only journal files of answered searches not yet in the database.

Each web worker appends one line per search to its own file before the response leaves, and
holds an exclusive flock(2) on it for as long as it lives. The kernel drops the lock when the
process dies, however it dies (SIGKILL, OOM, a crash), and the appended bytes are already in
the page cache, so another process that can take the lock knows the owner is gone and writes
what the file holds (`claim_orphans`). Nothing here touches the database.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SUFFIX = ".jsonl"
ROTATE_BYTES = 4 << 20  # once this much is written and stored, the file starts again from empty


def split_lines(data: bytes) -> tuple[list[bytes], int]:
    """Whole lines in `data` and how many bytes they take; a torn last line is left out."""
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].split(b"\n") if line], end


class Journal:
    """This process's journal: `append` from request threads, `unwritten`/`mark_written` from its writer."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        staging = os.path.join(directory, name + ".new")
        self.fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # Locked before it takes its journal name: a drainer never sees an unlocked live journal.
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.path = os.path.join(directory, name + SUFFIX)
        os.rename(staging, self.path)
        self.directory = directory
        self.appended = 0  # bytes in the file
        self.written = 0  # bytes of it stored in the database
        self._lock = threading.Lock()

    def append(self, line: bytes) -> None:
        """Add one record; raises OSError (disk full, ...) having added nothing usable."""
        with self._lock:
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:
                # A partial line must not glue itself to the next record: cut the file back.
                os.ftruncate(self.fd, self.appended)
                raise
            self.appended += len(line)

    def unwritten(self) -> tuple[bytes, int]:
        """The bytes not yet stored and the offset they end at."""
        with self._lock:
            end = self.appended
        return os.pread(self.fd, end - self.written, self.written), end

    def mark_written(self, end: int) -> None:
        """Everything before `end` is in the database; start the file again when all of it is."""
        with self._lock:
            self.written = end
            if self.written == self.appended and self.written >= ROTATE_BYTES:
                os.ftruncate(self.fd, 0)
                self.appended = self.written = 0

    def close(self, remove: bool) -> None:
        """Let go of the file; `remove` only when everything in it is stored."""
        if remove:
            os.unlink(self.path)
        os.close(self.fd)


class Orphan:
    """A dead process's journal, locked by this process until `done`."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def read(self) -> bytes:
        size = os.fstat(self.fd).st_size
        return os.pread(self.fd, size, 0)


@contextmanager
def _opened(path: str) -> Iterator[int | None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # drained and removed by another process since the listing
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def claim_orphans(directory: str, own: str | None) -> Iterator[Orphan]:
    """Each journal in `directory` whose owner is gone, locked; the caller stores it, then the file is removed.

    A journal is removed only after the caller's body ran without raising: one it could not store
    stays for the next try (by this or any other process).
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(directory, name)
        if not name.endswith(SUFFIX) or path == own:
            continue
        with _opened(path) as fd:
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue  # its owner lives
                raise
            if os.fstat(fd).st_nlink == 0:
                continue  # another drainer finished it and removed it between our listing and open
            yield Orphan(path, fd)
            os.unlink(path)  # reached only when the caller stored it
