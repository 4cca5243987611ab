"""SQLite writers take turns through the file lock (webapp.sqlite_writes), within and across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest

from webapp.config import load_config
from webapp.sqlite_writes import SerializedWritesConnection, is_write, lock_for


def connect(path, busy_ms: int = 0) -> sqlite3.Connection:
    # busy_timeout 0: without the lock a second writer fails at once with "database is locked".
    conn = sqlite3.connect(path, factory=SerializedWritesConnection, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    return conn


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)")
    return str(path)


def test_statements_that_write_are_told_from_reads():
    assert is_write("INSERT INTO log VALUES (1)") and is_write("  update log set who = 1")
    assert is_write("DELETE FROM log") and is_write("REPLACE INTO log VALUES (1)") and is_write("CREATE TABLE t (a)")
    assert is_write("BEGIN IMMEDIATE")
    assert not is_write("SELECT * FROM log") and not is_write("PRAGMA busy_timeout=0") and not is_write("BEGIN")


def test_a_second_writer_waits_for_the_first_instead_of_failing(db_path):
    first, second = connect(db_path), connect(db_path)
    first.execute("INSERT INTO log (who) VALUES ('first')")  # holds the lock until commit
    done = []

    def write_second() -> None:
        second.execute("INSERT INTO log (who) VALUES ('second')")
        second.commit()
        done.append(time.monotonic())

    thread = threading.Thread(target=write_second)
    thread.start()
    time.sleep(0.2)
    assert done == []  # waiting on the lock, not failed
    committed_at = time.monotonic()
    first.commit()
    thread.join(5)
    assert done and done[0] >= committed_at
    assert [r[0] for r in first.execute("SELECT who FROM log ORDER BY id")] == ["first", "second"]


def test_the_lock_is_dropped_by_commit_rollback_close_and_autocommit(db_path):
    conn = connect(db_path)
    lock = lock_for(db_path)
    conn.execute("INSERT INTO log (who) VALUES ('a')")
    assert not lock.acquire(timeout=0.05)  # held by the open transaction
    conn.rollback()
    assert lock.acquire(timeout=0.05)
    lock.release()
    conn.execute("INSERT INTO log (who) VALUES ('b')")
    conn.close()  # closing with a transaction open (SQLite rolls it back) frees the lock too
    assert lock.acquire(timeout=0.05)
    lock.release()
    auto = sqlite3.connect(db_path, factory=SerializedWritesConnection, isolation_level=None)
    auto.execute("INSERT INTO log (who) VALUES ('c')")  # autocommit: no transaction stays open
    assert lock.acquire(timeout=0.05)
    lock.release()
    with pytest.raises(sqlite3.OperationalError):
        auto.execute("INSERT INTO nowhere VALUES (1)")  # a failed write opens nothing and keeps nothing
    assert lock.acquire(timeout=0.05)
    lock.release()


def _hold_a_write(path: str, ready, release) -> None:
    conn = connect(path)
    conn.execute("INSERT INTO log (who) VALUES ('child')")
    ready.set()
    release.wait(10)
    conn.commit()
    conn.close()


def test_processes_take_turns_too(db_path):
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as another gunicorn worker
    ready, release = context.Event(), context.Event()
    child = context.Process(target=_hold_a_write, args=(db_path, ready, release))
    child.start()
    try:
        assert ready.wait(30)
        threading.Timer(0.3, release.set).start()
        parent = connect(db_path)
        started = time.monotonic()
        parent.execute("INSERT INTO log (who) VALUES ('parent')")  # waits for the child's commit
        parent.commit()
        assert time.monotonic() - started >= 0.2
        assert [r[0] for r in parent.execute("SELECT who FROM log ORDER BY id")] == ["child", "parent"]
    finally:
        release.set()
        child.join(10)


def test_a_writer_that_cannot_get_the_lock_in_time_goes_on_without_it(db_path):
    lock = lock_for(db_path)
    holder = threading.Thread(target=lambda: (lock.acquire(), time.sleep(0.5), lock.release()))
    holder.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert not lock.acquire(timeout=0.1)  # bounded: SQLite's busy timeout applies after this
    assert time.monotonic() - started < 0.4
    holder.join()


def test_in_memory_databases_and_postgresql_are_left_alone():
    assert lock_for(":memory:") is None and lock_for("file:x?mode=memory&cache=shared") is None
    postgres = load_config({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://localhost/test"})
    assert "connect_args" not in postgres["SQLALCHEMY_ENGINE_OPTIONS"]
    sqlite_config = load_config({"SQLALCHEMY_DATABASE_URI": "sqlite:////tmp/kairos-test.db"})
    assert sqlite_config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["factory"] is SerializedWritesConnection
    off = load_config({"SQLALCHEMY_DATABASE_URI": "sqlite:////tmp/k.db", "SQLITE_SERIALIZED_WRITES": False})
    assert "connect_args" not in off["SQLALCHEMY_ENGINE_OPTIONS"]
