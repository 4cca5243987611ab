"""Readiness for /api/health: what this worker serves, since when, and what every worker serves.

A worker is ready when it serves the active model version or is loading it; one whose load
of the active version failed answers 503, so a load balancer takes it out instead of letting
it serve a retired version unnoticed. A worker whose follower cannot reach the database is
"degraded": it still answers from its last snapshot, and says how old that is (with 503
while its own look at the database fails too, so a load balancer can take the machine out:
a search is served from memory, but events, profiles and the search log need the database). The cards of
every worker on the host (webapp.services.serving_board) come with it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.services.search_index import searcher_state
from webapp.services.serving_board import board_directory, read_board, worker_card
from webapp.services.serving_follower import ServingSnapshot, current_snapshot


def _active_version() -> tuple[bool, int | None]:
    """(reachable, the active version's id) from the database."""
    try:
        return True, db.session.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
    except SQLAlchemyError:
        db.session.rollback()
        return False, None


def readiness() -> tuple[dict, int]:
    """The health body and its HTTP status (200 ready, 503 unable to serve or without its database)."""
    state = searcher_state()
    snapshot = current_snapshot()
    followed = snapshot is not None
    if snapshot is None:  # no follower: this process syncs on its requests
        snapshot = ServingSnapshot(state.searcher, state.version_id, state.version_since, None)
    reachable, active = _active_version()
    status, code = "ok", 200
    if not reachable or snapshot.error is not None:
        status = "degraded"
        if followed and snapshot.synced_at is None:
            status, code = "unready", 503  # never in step: nothing to serve from
        if not reachable:
            code = 503  # searches still answer from the snapshot, but visitors and events need the database
    if reachable and active is not None and active != snapshot.version_id:
        if active in state.failed_versions:
            status, code = "unready", 503  # the active version cannot load here
        elif status == "ok":
            status = "loading"
    body = {
        "status": status,
        "active_version_id": active if reachable else None,
        "worker": {**worker_card(snapshot), "follower": followed},
    }
    if followed:
        body["workers"] = read_board(board_directory())
    if not reachable:
        body["database"] = "unreachable"
    return body, code
