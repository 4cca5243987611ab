"""Search ids handed out before the search's row is written.

A search is answered with its id (the storefront's click beacons and API clients send it back
with their events), but on the serving path its row is written after the response
(webapp.services.search_log). So ids are reserved: a web worker takes a block at a time, and
every writer of search rows, the in-request path included, takes its ids from the same source,
so no two searches ever share one. A worker that stops leaves the rest of its block unused:
search ids have gaps and are ordered only within a worker, never repeated.

PostgreSQL: the table's own serial sequence, which a plain insert also draws from.
SQLite: the `id_blocks` row, moved past both what it handed out and the largest stored id in
one statement, so a row inserted by other means (a test, a script) is never handed out again.
"""

from __future__ import annotations

import os
import threading
from collections import deque

from sqlalchemy import Connection, Engine, text

SEARCHES = "search_queries"
BLOCK = 200  # ids a worker reserves at a time: one short write per 200 searches

_PG_RESERVE = text(f"SELECT nextval(pg_get_serial_sequence('{SEARCHES}', 'id')) FROM generate_series(1, :n)")
_PG_ISSUED = text(f"SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('{SEARCHES}', 'id')::regclass), 0)")
_ROW = text("INSERT INTO id_blocks (name, next_id) VALUES (:name, 1) ON CONFLICT (name) DO NOTHING")
_MOVE = text(
    f"UPDATE id_blocks SET next_id = MAX(next_id, (SELECT COALESCE(MAX(id), 0) + 1 FROM {SEARCHES})) + :n"
    " WHERE name = :name"
)
_NEXT = text("SELECT next_id FROM id_blocks WHERE name = :name")
_STORED = text(f"SELECT COALESCE(MAX(id), 0) FROM {SEARCHES}")


def reserve(connection: Connection, count: int) -> list[int]:
    """`count` unused search ids, in the connection's transaction (committed by the caller)."""
    if connection.dialect.name == "postgresql":
        return [row[0] for row in connection.execute(_PG_RESERVE, {"n": count})]
    # The first statement writes, so on SQLite the writer lock is taken before the max is read.
    connection.execute(_ROW, {"name": SEARCHES})
    connection.execute(_MOVE, {"name": SEARCHES, "n": count})
    end = connection.execute(_NEXT, {"name": SEARCHES}).scalar_one()
    return list(range(end - count, end))


def issued_below(connection: Connection) -> int:
    """Every search id handed out so far (reserved or stored) is below this."""
    if connection.dialect.name == "postgresql":
        return int(connection.execute(_PG_ISSUED).scalar_one()) + 1
    reserved = connection.execute(_NEXT, {"name": SEARCHES}).scalar()
    return max(reserved or 1, int(connection.execute(_STORED).scalar_one()) + 1)


class IdReserve:
    """This worker's reserved, not yet used search ids; thread-safe."""

    def __init__(self, block: int = BLOCK) -> None:
        self.block = block
        self._free: deque[int] = deque()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self, engine: Engine) -> int:
        """The next id; reserves a block only when `top_up` has not kept ahead (a write: waits its turn)."""
        with self._lock:
            self._forget_if_forked()
            if not self._free:
                self._free.extend(self._reserve_block(engine))
            return self._free.popleft()

    def top_up(self, engine: Engine) -> None:
        """Reserve the next block ahead of need, off the request path (the search log's thread).

        On SQLite a reservation waits for the writer lock, behind whichever transaction holds it:
        taken by a request, that wait was the slowest search in every block of them.
        """
        with self._lock:
            self._forget_if_forked()
            if len(self._free) > self.block // 2:
                return
        block = self._reserve_block(engine)  # outside the lock: requests keep taking ids meanwhile
        with self._lock:
            self._free.extend(block)

    def _reserve_block(self, engine: Engine) -> list[int]:
        with engine.begin() as connection:
            return reserve(connection, self.block)

    def _forget_if_forked(self) -> None:
        if self._pid != os.getpid():  # a forked child must not use its parent's ids too
            self._free.clear()
            self._pid = os.getpid()
