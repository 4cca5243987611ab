"""Stage 2 in the web worker: the shopper's context for a search, and the fitted ranker to use.

The profile is read per search from the visitor's recent events and, when there are any,
the impressions of their last few searches (two indexed queries, bounded); the ranker is the newest active ContextRankerFit, polled every CONTEXT_RANKER_CHECK_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, func, select

from engine.ranking.context import ContextSettings, top_category
from engine.ranking.context_ranker import ContextRanker
from engine.ranking.profile import Exposure, Interaction, ProfileItem, ShopperProfile, build_profile
from engine.ranking.stage import SearchContext
from engine.serving.bundle import ServingBundle
from engine.serving.searcher import Searcher
from webapp.extensions import db
from webapp.models import ContextRankerFit, Event, Impression, SearchQuery, epoch, utcnow
from webapp.services.search_params import normalize_query

PROFILE_SEARCHES = 10  # brand and category affinity weigh engagement against these searches' impressions


# Built once: constructing these statements per search cost more than running them (profiled).
_EVENT_TIME = func.coalesce(Event.occurred_at, Event.created_at)
_INTERACTIONS = (
    select(Event.id, Event.type, Event.product_id, _EVENT_TIME.label("at"))
    .where(Event.visitor_id == bindparam("visitor"), Event.created_at >= bindparam("since"))
    .order_by(Event.id.desc())
    .limit(bindparam("limit"))
)
_SEARCHES = (
    select(SearchQuery.id, SearchQuery.created_at)
    .where(SearchQuery.visitor_id == bindparam("visitor"), SearchQuery.created_at >= bindparam("since"))
    .order_by(SearchQuery.created_at.desc(), SearchQuery.id.desc())  # ids come from per-worker blocks
    .limit(bindparam("limit"))
)
_SHOWN = select(Impression.search_id, Impression.product_id, Impression.position).where(
    Impression.search_id.in_(bindparam("ids", expanding=True))
)


def recent_interactions(visitor_id: str, now: datetime) -> tuple[int | None, list[Interaction]]:
    """The newest event id (it says whether a cached profile still holds) and the visitor's events
    within the profile window, newest first, bounded."""
    config = current_app.config
    since = now - timedelta(hours=config["PROFILE_WINDOW_HOURS"])
    # Through the session's connection, not the ORM's execute: the statement is Core and the
    # ORM layer around it cost more than the query (every search of a known visitor runs it).
    rows = (
        db.session.connection()
        .execute(_INTERACTIONS, {"visitor": visitor_id, "since": since, "limit": config["PROFILE_MAX_EVENTS"]})
        .all()
    )
    return (rows[0][0] if rows else None), [Interaction(kind, pid, epoch(at)) for _, kind, pid, at in rows]


def recent_exposures(visitor_id: str, now: datetime) -> list[Exposure]:
    """What the visitor was shown on their last PROFILE_SEARCHES searches within the profile window."""
    since = now - timedelta(hours=current_app.config["PROFILE_WINDOW_HOURS"])
    searches = db.session.execute(_SEARCHES, {"visitor": visitor_id, "since": since, "limit": PROFILE_SEARCHES}).all()
    if not searches:
        return []
    # Two indexed reads: on SQLite, joining the searches to their impressions took twice as long.
    stamps = {sid: epoch(created) for sid, created in searches}
    rows = db.session.execute(_SHOWN, {"ids": list(stamps)}).all()
    return [Exposure(pid, position, stamps[sid]) for sid, pid, position in rows]


def visitor_profile(
    visitor_id: str | None, searcher: Searcher, bundle: ServingBundle | None, now: datetime, no_feedback: bool = False
) -> ShopperProfile | None:
    """The visitor's session profile; None for a new visitor or with personalization off.

    `no_feedback`: the visitor's cookie says they have recorded no event (webapp.visitors), so
    there is nothing to read.
    """
    if not visitor_id or no_feedback or not current_app.config["PERSONALIZATION"]:
        return None
    newest, interactions = recent_interactions(visitor_id, now)
    if not interactions:
        return None  # no engagement, nothing to weigh exposure against: skip the impressions read
    # A profile changes when the visitor acts: it is kept until their next event (or a minute,
    # as its time decay moves on). Searches alone leave it as is, which saved the exposure read
    # and the build on every page of a browsing session (personalization's 3 ms budget).
    cache: _ProfileCache = current_app.extensions.setdefault("kairos.profiles", _ProfileCache())
    key = (visitor_id, newest, bundle.version_id if bundle is not None else None)
    cached = cache.get(key)
    if cached is not None:
        return cached
    profile = _build(interactions, visitor_id, searcher, bundle, now)
    cache.put(key, profile)
    return profile


class _ProfileCache:
    """visitor -> (key, profile, stored at): one entry per visitor, bounded, a minute at most."""

    TTL = 60.0
    SIZE = 10_000

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[tuple, ShopperProfile | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> ShopperProfile | None:
        with self._lock:
            entry = self._entries.get(key[0])
            if entry is None or entry[0] != key or time.monotonic() - entry[2] > self.TTL:
                return None
            return entry[1]

    def put(self, key: tuple, profile: ShopperProfile | None) -> None:
        with self._lock:
            self._entries[key[0]] = (key, profile, time.monotonic())
            self._entries.move_to_end(key[0])
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)


def _build(
    interactions: list[Interaction], visitor_id: str, searcher: Searcher, bundle: ServingBundle | None, now: datetime
) -> ShopperProfile | None:
    exposures = recent_exposures(visitor_id, now)
    cards = searcher.cards
    pids = {i.product_id for i in interactions} | {e.product_id for e in exposures}
    items = {
        pid: ProfileItem(cards[pid].brand, top_category(cards[pid].category), cards[pid].price)
        for pid in pids
        if pid in cards
    }
    lookup = bundle.vectors.lookup if bundle is not None else None
    return build_profile(interactions, items, lookup, epoch(now), exposures=exposures)


def search_context(
    visitor_id: str | None, text: str, searcher: Searcher, bundle: ServingBundle | None, no_feedback: bool = False
) -> SearchContext:
    """The moment and the shopper this search is answered for."""
    now = utcnow()
    profile = visitor_profile(visitor_id, searcher, bundle, now, no_feedback)
    return SearchContext(now=epoch(now), query_key=normalize_query(text), profile=profile)


def context_settings() -> ContextSettings:
    config = current_app.config
    return ContextSettings(explore_days=config["EXPLORE_DAYS"], explore_bonus=config["EXPLORE_BONUS"])


class _RankerState:
    def __init__(self) -> None:
        self.fit_id: int | None = None
        self.last_check = float("-inf")
        self.lock = threading.Lock()


def follow_context_ranker(searcher: Searcher, force: bool = False) -> None:
    """Point the searcher at the newest active fit (or none), checking at most every few seconds."""
    state: _RankerState = current_app.extensions.setdefault("kairos.context_ranker", _RankerState())
    if not force and time.monotonic() - state.last_check < current_app.config["CONTEXT_RANKER_CHECK_SECONDS"]:
        return
    if not state.lock.acquire(blocking=False):
        return
    try:
        state.last_check = time.monotonic()
        fit = db.session.scalars(
            select(ContextRankerFit).where(ContextRankerFit.status == "active").order_by(ContextRankerFit.id.desc())
        ).first()
        settings = context_settings()
        searcher.context_settings = settings
        if fit is None:
            searcher.context_ranker, state.fit_id = None, None
        elif fit.id != state.fit_id:
            ranker = ContextRanker.from_dict(fit.weights)
            ranker.explore_bonus = settings.explore_bonus
            searcher.context_ranker, state.fit_id = ranker, fit.id
        elif searcher.context_ranker is not None:
            searcher.context_ranker.explore_bonus = settings.explore_bonus
    finally:
        state.lock.release()
