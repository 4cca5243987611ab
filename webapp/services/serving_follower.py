"""One follower thread per web worker: every sync of the serving state, off the request path.

A gunicorn worker starts it after fork, beside the search log's flush thread
(`start_follower` in gunicorn.conf.py's post_worker_init). Every SERVING_FOLLOW_SECONDS it
runs the steps below, each still throttled by its own interval, and then publishes a
ServingSnapshot: request threads read `current_snapshot()` (one attribute read) and never
take a sync lock or run a sync query.

1. the catalog (webapp.services.search_index: the change feed, and a full reconciliation
   every CATALOG_RECONCILE_SECONDS);
2. the active and the running experiment's variant versions (webapp.services.serving_version;
   a new version loads in its own thread and is swapped in by it, so the follower goes on);
3. the signal counts mirror (webapp.services.signal_sync);
4. the context ranker (webapp.services.context_ranking);
5. the running experiment (webapp.services.assignment) and the suggestion index
   (webapp.services.instant_suggest; its rebuild, a second or more, in a thread of its own
   so the catalog sync is not held back), which a process without a follower refreshes on
   demand;
6. the synonyms and query rules (webapp.services.merchandising), carried in the snapshot.
7. the spelling corrector's vocabularies (webapp.services.spelling; rebuilt in a thread of
   its own when the catalog changed or SUGGEST_REFRESH_SECONDS passed).

The Searcher in a snapshot is the worker's one Searcher: only this thread and the version
loaders it starts change it, and a search reads each of its references once (see Searcher),
so searches go on while a sync runs. A step that cannot reach the database leaves the last
snapshot serving; the snapshot says when it was last in step and why not since
(webapp.services.serving_health reports both on /api/health).

A process without a follower (the CLI, `flask run`, the tests) runs `sync_serving_state`
from `get_searcher()` on the request path instead, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from engine.serving.searcher import Searcher
from webapp.extensions import db
from webapp.services.merchandising import Merchandising, follow_merchandising, held_merchandising
from webapp.services.search_index import FOLLOWER, reconcile_if_due, searcher_state, sync_searcher
from webapp.services.serving_board import ServingBoard, board_directory

WARN_EVERY_SECONDS = 30.0  # one warning per this while the database stays away

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingSnapshot:
    """What a worker serves, as of its follower's latest pass."""

    searcher: Searcher
    version_id: int | None  # the model version served (None: lexical search)
    version_since: float  # epoch seconds since which version_id is served
    synced_at: float | None  # epoch seconds of the latest pass that reached the database (None: never)
    error: str | None = None  # why the latest pass failed (None: it did not)
    loading: int | None = None  # a version being loaded to replace version_id
    catalog_seq: int | None = None  # the last catalog change feed number the Searcher holds
    merchandising: Merchandising | None = None  # the synonyms and query rules requests apply

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the snapshot was last in step with the database (None: never)."""
        return None if self.synced_at is None else max(0.0, (now or time.time()) - self.synced_at)


def sync_serving_state() -> None:
    """The catalog, the versions, the signal mirror, the context ranker and the merchandising, each when due."""
    from webapp.services.context_ranking import follow_context_ranker
    from webapp.services.serving_version import follow_active_version
    from webapp.services.signal_sync import sync_signals

    sync_searcher()
    follow_active_version()
    searcher = searcher_state().searcher
    sync_signals(searcher.board)
    follow_context_ranker(searcher)
    follow_merchandising(searcher)


def _follow_once() -> None:
    from webapp.services.assignment import refresh_running_experiment
    from webapp.services.instant_suggest import refresh_suggestions_in_background
    from webapp.services.spelling import refresh_speller_in_background

    sync_serving_state()
    reconcile_if_due()
    refresh_running_experiment()
    refresh_suggestions_in_background()
    refresh_speller_in_background()


class ServingFollower:
    """The thread that keeps one worker's serving state and publishes its snapshots."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._warned_at = float("-inf")
        with app.app_context():
            self._snapshot = self._capture("not synced yet", None)
            self.board = ServingBoard(board_directory())
        self.thread = threading.Thread(target=self._run, name="serving-follower", daemon=True)

    @property
    def snapshot(self) -> ServingSnapshot:
        """The current snapshot (replaced whole after each pass, never edited)."""
        return self._snapshot

    def follow_once(self) -> ServingSnapshot:
        """One pass of every due step; publishes and returns the new snapshot."""
        with self.app.app_context():
            error = None
            try:
                _follow_once()
            except SQLAlchemyError as exc:  # the database is away: keep serving what is held
                db.session.rollback()
                error = f"database unreachable ({type(exc).__name__})"
                if time.monotonic() - self._warned_at >= WARN_EVERY_SECONDS:
                    self._warned_at = time.monotonic()
                    log.warning("serving state not synced, serving the last snapshot: %s", exc)
            except Exception as exc:  # a bug must not stop following for the life of the worker
                error = f"sync failed ({type(exc).__name__})"
                log.exception("serving state sync failed; retrying in %.2f s", self.interval)
            self._snapshot = snapshot = self._capture(error, self._snapshot.synced_at)
        try:
            self.board.write(snapshot)
        except OSError as exc:  # the card is for people reading health; serving goes on without it
            log.warning("serving card not written to %s: %s", self.board.path, exc)
        return snapshot

    @staticmethod
    def _capture(error: str | None, previous_sync: float | None) -> ServingSnapshot:
        state = searcher_state()
        return ServingSnapshot(
            searcher=state.searcher,
            version_id=state.version_id,
            version_since=state.version_since,
            synced_at=time.time() if error is None else previous_sync,
            error=error,
            loading=state.loading_version,
            catalog_seq=state.seq,
            merchandising=held_merchandising(),
        )

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.follow_once()

    def stop(self) -> None:
        """Stop the thread; the worker keeps the state it holds."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=max(5.0, self.interval * 4))
        self.board.remove()


def start_follower(app: Flask) -> ServingFollower | None:
    """Follow the serving state in a thread of this process from now on (a gunicorn worker, after fork).

    None when SERVING_FOLLOW_SECONDS is 0: requests then sync on demand.
    """
    interval = app.config["SERVING_FOLLOW_SECONDS"]
    if interval <= 0:
        return None
    follower = ServingFollower(app, interval)
    follower.follow_once()  # in step before the first request reads it
    app.extensions[FOLLOWER] = follower
    follower.start()
    return follower


def stop_follower(app: Flask) -> None:
    """Stop this process's follower (gunicorn's worker_exit); requests sync on demand again."""
    follower = app.extensions.pop(FOLLOWER, None)
    if follower is not None:
        follower.stop()


def current_snapshot() -> ServingSnapshot | None:
    """The running follower's snapshot; None when this process has no follower."""
    follower = current_app.extensions.get(FOLLOWER)
    return follower.snapshot if follower is not None else None
