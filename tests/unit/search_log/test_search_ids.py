"""Search ids handed out before their rows are written (webapp.services.search_ids)."""

from __future__ import annotations

import os

from tests.unit.search_log.support import VISITOR, as_visitor
from webapp.extensions import db
from webapp.models import SearchQuery
from webapp.services.search_ids import IdReserve, issued_below, reserve
from webapp.visitors import ensure_visitor_row


def test_ids_are_never_shared_between_workers_the_request_path_and_direct_inserts(client, app, shop):
    first, second = IdReserve(block=5), IdReserve(block=5)
    taken = [first.take(db.engine), second.take(db.engine), first.take(db.engine)]
    as_visitor(client)
    taken.append(client.get("/api/search?q=towel").get_json()["search_id"])  # written in the request
    ensure_visitor_row(VISITOR)
    direct = SearchQuery(text="x", normalized="x", visitor_id=VISITOR)
    db.session.add(direct)
    db.session.commit()
    taken.append(direct.id)
    taken += [second.take(db.engine) for _ in range(6)]  # past its block: a new one
    assert len(set(taken)) == len(taken)
    with db.engine.connect() as connection:
        assert issued_below(connection) > max(taken)
        assert min(reserve(connection, 3)) > max(taken)
        connection.commit()


def test_a_forked_worker_does_not_reuse_its_parents_ids(app, shop, monkeypatch):
    ids = IdReserve(block=10)
    parent = ids.take(db.engine)
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from the child after fork
    child = ids.take(db.engine)
    assert child > parent + 9
