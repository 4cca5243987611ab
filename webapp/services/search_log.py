"""The search log written after the response: each web worker journals, a thread stores.

Writing a search's row and its 24 impressions inside the request was most of a search's
time under concurrent load (bench/README.md): one write transaction per search, taking turns
for SQLite's single writer. A gunicorn worker started with `start_search_log` instead:

1. takes the search's id from its reserved block (webapp.services.search_ids), so the
   response can carry it before the row exists;
2. appends the row and its impressions as one JSON line to its journal file
   (webapp.services.search_journal), a single write(2) before the response leaves;
3. lets a background thread store the journal every SEARCH_LOG_FLUSH_SECONDS, all new lines
   in one transaction.

Nothing answered is lost: a killed worker's journal stays on disk and any other worker stores
it (it finds it by its free lock), and storing is idempotent (a replayed line whose id is
already stored is skipped), so a kill between the commit and the journal's bookkeeping writes
nothing twice. An event that refers to a search not yet stored waits for it, bounded
(`await_searches`). With the database away, lines stay in the journal and the thread retries.
A line the database refuses on its own (it cannot happen through the search path, but a
journal is a file) goes to `rejected.log` beside the journals with an error in the log,
instead of holding back every search after it.

Processes that never call `start_search_log` (the CLI, `flask run`, the tests) write each
search in its request's transaction, as before, with ids from the same source.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from webapp.extensions import db
from webapp.models import SearchQuery, Visitor
from webapp.services.search_ids import IdReserve, issued_below
from webapp.services.search_journal import Journal, claim_orphans, split_lines

EXTENSION = "kairos.search_log"
REJECTED = "rejected.log"
ORPHAN_CHECK_SECONDS = 30.0  # how often a worker looks for journals of dead workers
WARN_EVERY_SECONDS = 30.0  # one warning per this while the database stays away
IN_CHUNK = 500  # ids per IN (...) list

log = logging.getLogger(__name__)


# A line: the search and its impressions' scalar columns as JSON, a tab, then each impression's
# stage-2 features as its own JSON text, joined by the unit separator (empty: none). Compact
# JSON never holds a raw tab or control character, so the split is exact. The features are
# stored as the text journaled, never parsed and re-serialized: that round trip was most of a
# flush's time, and a flush holds the worker's GIL while searches wait for it.
_FEATURES = b"\t"
_EACH = b"\x1f"


def encode_record(search_id: int, search: dict, impressions: list[dict]) -> bytes:
    """One journal line: the search row's values (without id) and its impression rows (without search_id)."""
    row = {**search, "created_at": search["created_at"].isoformat()}
    shown = [{k: v for k, v in imp.items() if k != "features"} for imp in impressions]
    head = json.dumps({"id": search_id, "search": row, "impressions": shown}, separators=(",", ":")).encode()
    features = _EACH.join(
        b"" if imp.get("features") is None else json.dumps(imp["features"], separators=(",", ":")).encode()
        for imp in impressions
    )
    return head + _FEATURES + features + b"\n"


def decode_record(line: bytes) -> dict:
    """A journal line as {"id", "search", "impressions"}; each impression's "features" is JSON text or None."""
    head, _, features = line.partition(_FEATURES)
    record = json.loads(head)
    record["search"]["created_at"] = datetime.fromisoformat(record["search"]["created_at"])
    texts = features.split(_EACH) if record["impressions"] else []
    if len(texts) != len(record["impressions"]):
        raise ValueError(f"{len(record['impressions'])} impressions but {len(texts)} feature texts")
    for impression, raw in zip(record["impressions"], texts, strict=True):
        impression["features"] = raw.decode() if raw else None
    record["line"] = line  # what to set aside if the database refuses it
    return record


_IMPRESSION_COLUMNS = "search_id, product_id, position, ranker, model_version_id, features"
_INSERT_IMPRESSIONS = {
    # The features arrive as JSON text: SQLite stores it as is, PostgreSQL casts it to its json type.
    "sqlite": text(
        f"INSERT INTO impressions ({_IMPRESSION_COLUMNS})"
        " VALUES (:search_id, :product_id, :position, :ranker, :model_version_id, :features)"
    ),
    "postgresql": text(
        f"INSERT INTO impressions ({_IMPRESSION_COLUMNS})"
        " VALUES (:search_id, :product_id, :position, :ranker, :model_version_id, CAST(:features AS JSON))"
    ),
}


def _chunks(items: list, size: int = IN_CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_missing_visitors(records: list[dict]) -> None:
    """Visitor rows for first-time visitors, oldest search time as their creation; a racing writer's row wins."""
    first_seen: dict[str, datetime] = {}
    for record in records:
        visitor, at = record["search"]["visitor_id"], record["search"]["created_at"]
        if visitor is not None and (visitor not in first_seen or at < first_seen[visitor]):
            first_seen[visitor] = at
    if not first_seen:
        return
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Visitor.__table__).on_conflict_do_nothing(index_elements=["id"])
    db.session.execute(statement, [{"id": vid, "created_at": at} for vid, at in first_seen.items()])


def _unlink_cleared(records: list[dict]) -> None:
    """Searches answered before their visitor cleared their history are stored without the visitor."""
    visitors = list({r["search"]["visitor_id"] for r in records} - {None})
    cleared: dict[str, datetime] = {}
    for chunk in _chunks(visitors):
        # Every row locked, not only cleared ones (PostgreSQL; FOR NO KEY UPDATE, so foreign-key
        # checks pass): a clearing that commits after this read could not unlink rows this
        # transaction has not committed yet, so one waits for the other. SQLite: this transaction
        # already holds the writer lock.
        rows = db.session.execute(
            select(Visitor.id, Visitor.history_cleared_at).where(Visitor.id.in_(chunk)).with_for_update(key_share=True)
        )
        cleared.update((vid, at) for vid, at in rows if at is not None)
    for record in records:
        at = cleared.get(record["search"]["visitor_id"])
        if at is not None and record["search"]["created_at"] <= at:
            record["search"]["visitor_id"] = None


def store_records(records: list[dict]) -> int:
    """Insert the records whose search is not stored yet, in the session's transaction; returns how many."""
    ids = [r["id"] for r in records]
    stored: set[int] = set()
    for chunk in _chunks(ids):
        stored.update(db.session.scalars(select(SearchQuery.id).where(SearchQuery.id.in_(chunk))))
    fresh = [r for r in records if r["id"] not in stored]
    if not fresh:
        return 0
    _insert_missing_visitors(fresh)
    _unlink_cleared(fresh)
    db.session.execute(insert(SearchQuery.__table__), [{"id": r["id"], **r["search"]} for r in fresh])
    shown = [{**row, "search_id": r["id"]} for r in fresh for row in r["impressions"]]
    if shown:
        db.session.execute(_INSERT_IMPRESSIONS[db.session.get_bind().dialect.name], shown)
    return len(fresh)


def _missing(connection: Connection, ids: set[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(sorted(ids)):
        found.update(connection.scalars(select(SearchQuery.id).where(SearchQuery.id.in_(chunk))))
    connection.rollback()  # each look is its own transaction: it must see what others commit meanwhile
    return ids - found


class JournalStore:
    """Stores journal lines into the database, and stores dead processes' journals (any process)."""

    def __init__(self, app: Flask, directory: str) -> None:
        self.app = app
        self.directory = directory

    def store_orphans(self, own: str | None = None) -> int:
        """Store the journals of processes that died; returns how many searches were new."""
        stored = 0
        for orphan in claim_orphans(self.directory, own=own):
            data = orphan.read()
            lines, used = split_lines(data)
            stored += self.store_lines(lines)
            log.warning("stored the search journal of a stopped worker: %s (%d lines)", orphan.path, len(lines))
            if used < len(data):  # its last write was cut by the kill: that search was never answered
                log.warning("dropped the torn last %d bytes of %s", len(data) - used, orphan.path)
        return stored

    def store_lines(self, lines: list[bytes]) -> int:
        """Store the lines in one transaction; set aside the unreadable once the rest is stored."""
        records, unreadable = [], []
        for line in lines:
            try:
                records.append(decode_record(line))
            except (ValueError, KeyError, TypeError) as exc:
                unreadable.append((line, f"unreadable: {exc}"))
        stored = 0
        if records:
            with self.app.app_context():
                try:
                    stored = store_records(records)
                    db.session.commit()
                except (IntegrityError, DataError):
                    db.session.rollback()
                    stored = self._store_one_by_one(records)
                except Exception:  # the database is away: nothing set aside, the whole batch is retried
                    db.session.rollback()
                    raise
                finally:
                    db.session.remove()
        for line, reason in unreadable:
            self._reject(line, reason)
        return stored

    def _store_one_by_one(self, records: list[dict]) -> int:
        """After a batch was refused: store each alone, setting aside only those refused alone."""
        stored = 0
        for record in records:
            try:
                stored += store_records([record])
                db.session.commit()
            except (IntegrityError, DataError) as exc:
                db.session.rollback()
                self._reject(record["line"], str(exc.orig))
        return stored

    def _reject(self, line: bytes, reason: str) -> None:
        path = os.path.join(self.directory, REJECTED)
        with open(path, "ab") as out:
            out.write(line if line.endswith(b"\n") else line + b"\n")
        log.error("search log line set aside in %s: %s", path, reason)


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
