"""What a search journal line holds, and how lines get into the database (any process).

A line: the search row and its impressions, written by a web worker before it answers
(webapp.services.search_log). Storing is idempotent: a line whose search id is already stored
is skipped, so a journal replayed after a kill writes nothing twice. A line the database
refuses on its own (it cannot happen through the search path, but a journal is a file) goes to
`rejected.log` beside the journals with an error in the log, instead of holding back every
search after it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime

from flask import Flask
from sqlalchemy import insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError

from webapp.extensions import db, in_chunks
from webapp.models import SearchQuery, Visitor
from webapp.services.logged_features import features_json
from webapp.services.search_journal import claim_orphans, split_lines

REJECTED = "rejected.log"
_LATER_COLUMNS = {"corrected_text": None, "client_hash": None}

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
    features = _EACH.join(b"" if imp.get("features") is None else features_json(imp["features"]) for imp in impressions)
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


_IMPRESSION_COLUMNS = "search_id, product_id, position, ranker, model_version_id, imposed, features"
_INSERT_IMPRESSIONS = {
    # The features arrive as JSON text: SQLite stores it as is, PostgreSQL casts it to its json type.
    "sqlite": text(
        f"INSERT INTO impressions ({_IMPRESSION_COLUMNS})"
        " VALUES (:search_id, :product_id, :position, :ranker, :model_version_id, :imposed, :features)"
    ),
    "postgresql": text(
        f"INSERT INTO impressions ({_IMPRESSION_COLUMNS})"
        " VALUES (:search_id, :product_id, :position, :ranker, :model_version_id, :imposed, CAST(:features AS JSON))"
    ),
}


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
    for chunk in in_chunks(visitors):
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
            record["search"]["client_hash"] = None


def stored_ids(connection, ids: list[int]) -> set[int]:
    """Which of these search ids are stored, through a session or a connection."""
    stored: set[int] = set()
    for chunk in in_chunks(ids):
        stored.update(connection.scalars(select(SearchQuery.id).where(SearchQuery.id.in_(chunk))))
    return stored


def store_records(records: list[dict]) -> int:
    """Insert the records whose search is not stored yet, in the session's transaction; returns how many."""
    stored = stored_ids(db.session, [r["id"] for r in records])
    fresh = [r for r in records if r["id"] not in stored]
    if not fresh:
        return 0
    _insert_missing_visitors(fresh)
    _unlink_cleared(fresh)
    # A line journaled before a column existed lacks it: one executemany needs every key.
    rows = [{**_LATER_COLUMNS, "id": r["id"], **r["search"]} for r in fresh]
    db.session.execute(insert(SearchQuery.__table__), rows)
    shown = [{"imposed": None, **row, "search_id": r["id"]} for r in fresh for row in r["impressions"]]
    if shown:
        db.session.execute(_INSERT_IMPRESSIONS[db.session.get_bind().dialect.name], shown)
    return len(fresh)


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
