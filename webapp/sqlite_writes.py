"""SQLite writers take turns through an OS file lock instead of SQLite's sleeping busy handler.

SQLite lets one writer at a time hold a database. A writer that finds it taken sleeps and
retries on a fixed schedule (1, 2, 5, 10, 15, 20, 25 ... 100 ms), so under concurrent
searches, each of which logs itself, a 1 ms wait often cost 10-50 ms and p99 reached 150-250 ms
(bench/search_latency.py, 2 workers x 2 threads at concurrency 4). Here every connection of
every Kairos process to the same database file takes a lock before its first write statement
and drops it when its transaction ends: threads of one process wait on a threading.Lock,
processes on flock(2), and both wake the moment the holder is done.

Bounded, never a hang: a writer that cannot get the lock within LOCK_TIMEOUT_SECONDS (say a
thread that writes on a second connection while its first holds the lock) goes ahead without
it, and SQLite's own busy timeout then applies as before. Only file databases take part;
PostgreSQL writers never wait on each other this way and are left alone.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from urllib.parse import urlsplit

LOCK_TIMEOUT_SECONDS = 10.0  # as the connection's busy_timeout: no writer waits longer than before
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")


class WriteLock:
    """One database file's writer lock within this process: a thread lock in front of flock on a side file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def acquire(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> bool:
        """Take the lock, waiting at most `timeout` seconds in all; False if it could not be had."""
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=timeout):
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            pause = 0.0002
            while True:  # only one thread per process polls here; the others wait on the thread lock
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._thread_lock.release()
                        return False
                    time.sleep(pause)  # far finer than SQLite's schedule; writes here last about 1 ms
                    pause = min(pause * 2, 0.002)
        except OSError:
            self._thread_lock.release()  # no lock file (read-only directory): SQLite's busy handler applies
            return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


_locks: dict[tuple[int, str], WriteLock] = {}
_locks_guard = threading.Lock()


def lock_for(database: str) -> WriteLock | None:
    """The writer lock of a database file for this process (None for in-memory databases)."""
    path = urlsplit(database).path if database.startswith("file:") else database
    if not path or path == ":memory:" or "mode=memory" in database:
        return None
    key = (os.getpid(), os.path.abspath(path))  # per process: a forked child must not share the parent's flock
    with _locks_guard:
        if key not in _locks:
            _locks[key] = WriteLock(key[1] + ".writelock")
        return _locks[key]


def is_write(sql: str) -> bool:
    return sql.lstrip()[:15].upper().startswith(_WRITES)


class SerializedWritesConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its database's WriteLock from its first write to the end of its transaction."""

    def __init__(self, database, *args, **kwargs) -> None:
        super().__init__(database, *args, **kwargs)
        self._write_lock = lock_for(os.fspath(database))
        self._holding = False

    def cursor(self, factory=None):  # noqa: D102 (sqlite3's signature)
        return super().cursor(factory or _SerializedCursor)

    # sqlite3's own shortcuts make their cursor in C, past cursor() above: route them through it.
    def execute(self, sql, parameters=(), /):  # noqa: D102
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):  # noqa: D102
        return self.cursor().executemany(sql, seq_of_parameters)

    def before_statement(self, sql: str) -> None:
        if self._write_lock is not None and not self._holding and is_write(sql):
            self._holding = self._write_lock.acquire()

    def after_statement(self) -> None:
        """Release once no transaction is open (an autocommit write, or a failed statement that opened none)."""
        if not self.in_transaction:
            self._drop_lock()

    def _drop_lock(self) -> None:
        if self._holding:
            self._holding = False
            self._write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.after_statement()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after_statement()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._drop_lock()  # SQLite rolled back whatever was open


class _SerializedCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):  # noqa: D102
        self.connection.before_statement(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after_statement()

    def executemany(self, sql, seq_of_parameters, /):  # noqa: D102
        self.connection.before_statement(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.after_statement()
