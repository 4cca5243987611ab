"""The search log written after the response: each web worker journals, a thread stores.

Writing a search's row and its 24 impressions inside the request was most of a search's
time under concurrent load (bench/README.md): one write transaction per search, taking turns
for SQLite's single writer. A gunicorn worker started with `start_search_log` instead:

1. takes the search's id from its reserved block (webapp.services.search_ids), so the
   response can carry it before the row exists;
2. appends the row and its impressions as one line to its journal file
   (webapp.services.search_journal; the line's format: webapp.services.search_log_store), a
   single write(2) before the response leaves;
3. lets a background thread store the journal every SEARCH_LOG_FLUSH_SECONDS, all new lines
   in one transaction.

Nothing answered is lost: a killed worker's journal stays on disk and any other worker stores
it (it finds it by its free lock), and storing is idempotent (a replayed line whose id is
already stored is skipped), so a kill between the commit and the journal's bookkeeping writes
nothing twice. An event that refers to a search not yet stored waits for it, bounded
(`await_searches`). With the database away, lines stay in the journal and the thread retries.

Processes that never call `start_search_log` (the CLI, `flask run`, the tests) write each
search in its request's transaction, as before, with ids from the same source.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask, current_app
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import db
from webapp.services.search_ids import IdReserve, issued_below
from webapp.services.search_journal import Journal, split_lines
from webapp.services.search_log_store import JournalStore, encode_record, stored_ids

EXTENSION = "kairos.search_log"
ORPHAN_CHECK_SECONDS = 30.0  # how often a worker looks for journals of dead workers
WARN_EVERY_SECONDS = 30.0  # one warning per this while the database stays away

log = logging.getLogger(__name__)


def _missing(connection: Connection, ids: set[int]) -> set[int]:
    missing = ids - stored_ids(connection, sorted(ids))
    connection.rollback()  # each look is its own transaction: it must see what others commit meanwhile
    return missing


class SearchLog:
    """One worker's journal, its id block and the thread that stores the journal."""

    def __init__(self, app: Flask, directory: str, interval: float, wait_seconds: float) -> None:
        self.app = app
        self.interval = interval
        self.wait_seconds = wait_seconds
        self.journal = Journal(directory)
        self.store = JournalStore(app, directory)
        self.ids = IdReserve()
        self._flush_lock = threading.Lock()  # the thread, a waiting event and the exit hook take turns
        self._stop = threading.Event()
        self._warned_at = 0.0
        self.thread = threading.Thread(target=self._run, name="search-log", daemon=True)

    # -- the request path -------------------------------------------------------------------
    def append(self, search: dict, impressions: list[dict]) -> int:
        """Journal a search; returns its id. Raises OSError when the journal cannot take it."""
        search_id = self.ids.take(db.engine)
        self.journal.append(encode_record(search_id, search, impressions))
        return search_id

    def top_up(self) -> None:
        """Keep reserved ids ahead of the searches (a reservation is a write: never in a request)."""
        with self.app.app_context():
            self.ids.top_up(db.engine)

    # -- storing ------------------------------------------------------------------------------
    def flush(self) -> int:
        """Store what this worker journaled since the last flush; returns how many searches were new."""
        with self._flush_lock:
            data, _ = self.journal.unwritten()
            lines, used = split_lines(data)
            if not lines:
                return 0
            stored = self.store.store_lines(lines)
            self.journal.mark_written(self.journal.written + used)
            return stored

    def drain_orphans(self) -> int:
        """Store the journals of workers that died; returns how many searches were new."""
        return self.store.store_orphans(own=self.journal.path)

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        next_orphan_check = 0.0
        while not self._stop.wait(self.interval):
            try:
                self.top_up()
                self.flush()
                if time.monotonic() >= next_orphan_check:
                    next_orphan_check = time.monotonic() + ORPHAN_CHECK_SECONDS
                    self.drain_orphans()
            except SQLAlchemyError as exc:  # the database is away: the journal keeps every line
                if time.monotonic() - self._warned_at >= WARN_EVERY_SECONDS:
                    self._warned_at = time.monotonic()
                    log.warning("search log not stored, kept in %s for the next try: %s", self.journal.path, exc)
            except Exception:  # a bug must not silently stop the log for the life of the worker
                log.exception("search log flush failed; retrying in %.2f s", self.interval)

    def close(self) -> None:
        """Stop the thread and store the rest; the journal is removed only when all of it is stored."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=max(1.0, self.interval * 4))
        try:
            self.flush()
        finally:
            done = self.journal.written == self.journal.appended
            self.journal.close(remove=done)  # not done: left for the next worker to find

    # -- events that refer to a search --------------------------------------------------------
    def wait_for(self, ids: set[int]) -> None:
        """Return once the searches are stored, or are no searches at all, or after wait_seconds."""
        with db.engine.connect() as connection:
            missing = _missing(connection, ids)
            if not missing:
                return
            below = issued_below(connection)
            connection.rollback()
            missing = {i for i in missing if i < below}  # never handed out: no point waiting
            if not missing:
                return
            self.flush()  # this worker's own, at once
            missing = _missing(connection, missing)
            if missing:
                self.drain_orphans()  # a worker killed right after answering
            deadline = time.monotonic() + self.wait_seconds
            while missing and time.monotonic() < deadline:
                time.sleep(min(0.01, self.interval))  # another live worker stores it on its next flush
                missing = _missing(connection, missing)


def search_log_for(app: Flask) -> SearchLog | None:
    return app.extensions.get(EXTENSION)


def journal_directory(app: Flask) -> str:
    return app.config["SEARCH_LOG_DIR"] or os.path.join(app.config["INSTANCE_DIR"], "searchlog")


def start_search_log(app: Flask) -> SearchLog | None:
    """Journal this process's searches from now on (a gunicorn worker, after fork); None when off.

    Also stores journals left by workers that died before this one started.
    """
    interval = app.config["SEARCH_LOG_FLUSH_SECONDS"]
    if interval <= 0:
        return None
    try:
        search_log = SearchLog(app, journal_directory(app), interval, app.config["SEARCH_LOG_WAIT_SECONDS"])
    except OSError as exc:  # no journal, no promise: searches are written in their requests instead
        log.warning("search journal unavailable (%s); searches are written in their requests", exc)
        return None
    try:
        search_log.drain_orphans()
        search_log.top_up()
    except SQLAlchemyError as exc:
        log.warning("journals of stopped workers not stored yet (retried every %.0f s): %s", ORPHAN_CHECK_SECONDS, exc)
    except Exception:  # a worker must boot; the thread retries both within 30 s
        log.exception("journals of stopped workers not stored at boot")
    app.extensions[EXTENSION] = search_log
    search_log.start()
    return search_log


def stop_search_log(app: Flask) -> None:
    """Store what this worker still journals (gunicorn's worker_exit); what cannot be stored stays on disk."""
    search_log = app.extensions.pop(EXTENSION, None)
    if search_log is not None:
        search_log.close()


def await_searches(ids: set[int]) -> None:
    """Before an event is checked against its search: wait for searches answered but not stored yet."""
    search_log = search_log_for(current_app._get_current_object())
    if search_log is not None and ids:
        search_log.wait_for(ids)
