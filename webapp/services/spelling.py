"""Each web worker's spelling corrector (engine.serving.spelling), from the shop's own words.

Two vocabularies: the catalog's (titles, brands, categories of the worker's searcher, rebuilt
when the catalog changed, about a second per 7,000 products) and the query log's (the words
of the queries the suggestion rule lets everyone see, webapp.services.suggestions, weighted by
their visitors; so one client cannot teach the shop a "correction"). Both are refreshed every
SUGGEST_REFRESH_SECONDS, and as soon as the catalog changed.

With a follower (webapp.services.serving_follower) the follower builds them, in a thread of
its own, off the request path: requests use the last corrector built, and none (no
correction) while a worker's first one is building. Without one, a request refreshes a
corrector that is due, and waits only before a worker's first one exists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from engine.serving.spelling import Correction, Speller, Vocabulary, catalog_vocabulary, words_of
from webapp.extensions import db
from webapp.services.background_rebuild import start_rebuild
from webapp.services.search_index import follower_runs, searcher_state
from webapp.services.suggestions import popular_query_counts

_NEVER = float("-inf")

log = logging.getLogger(__name__)


class _SpellState:
    def __init__(self) -> None:
        self.catalog = Vocabulary({})
        self.catalog_from: dict[int, tuple[str, str, str]] | None = None
        self.logged = Vocabulary({})
        self.speller = Speller([])
        self.built_at = _NEVER
        self.built_seq: int | None = None  # the catalog feed number the catalog vocabulary was read at
        self.building = threading.Lock()


def _state() -> _SpellState:
    state = current_app.extensions.get("kairos.spelling")
    if state is None:
        state = current_app.extensions.setdefault("kairos.spelling", _SpellState())
    return state


def current_speller() -> Speller:
    """This worker's corrector: with a follower, the last one it built; else refreshed first when due."""
    state = _state()
    if follower_runs():
        return state.speller
    interval = current_app.config["SUGGEST_REFRESH_SECONDS"]
    if time.monotonic() - state.built_at >= interval and state.building.acquire(blocking=state.built_at == _NEVER):
        try:
            if time.monotonic() - state.built_at >= interval:
                _refresh(state)
        finally:
            state.building.release()
    return state.speller


def _due(state: _SpellState) -> bool:
    elapsed = time.monotonic() - state.built_at
    return elapsed >= current_app.config["SUGGEST_REFRESH_SECONDS"] or state.built_seq != searcher_state().seq


def refresh_speller_in_background() -> threading.Thread | None:
    """The follower's step: a due rebuild (time, or a catalog change) in a thread of its own.

    Reading a large catalog's words takes a second or more; in the follower's own thread it
    would hold back the catalog sync that long. One rebuild runs at a time.
    """
    state = _state()
    if not current_app.config["SPELLING_CORRECTION"] or not _due(state):
        return None
    return start_rebuild(state.building, "spelling-rebuild", lambda: _refresh(state))


def _refresh(state: _SpellState) -> None:
    config = current_app.config
    state.built_seq = searcher_state().seq  # read before the cards: a change after it is seen next time
    cards = list(searcher_state().searcher.cards.values())
    source = {c.id: (c.title, c.brand, c.category) for c in cards}
    if source != state.catalog_from:
        state.catalog = catalog_vocabulary(cards)
        state.catalog_from = source
    logged: Counter[str] = Counter()
    try:
        for text, visitors in popular_query_counts(
            config["SUGGEST_MAX_QUERIES"], config["SUGGEST_QUERY_DAYS"], config["SUGGEST_MIN_VISITORS"]
        ):
            for word in set(words_of(text)):
                logged[word] += visitors
        state.logged = Vocabulary(logged)
    except SQLAlchemyError as exc:  # keep the previous log words; they come back at the next refresh
        db.session.rollback()
        current_app.logger.warning("spelling: query log words not refreshed: %s", exc)
    state.speller = Speller([state.catalog, state.logged])
    state.built_at = time.monotonic()


def correct_query(text: str) -> Correction | None:
    """The spelling correction for a query, or None (none needed, none found, or SPELLING_CORRECTION off)."""
    if not current_app.config["SPELLING_CORRECTION"] or not text.strip():
        return None
    return current_speller().correct(text)
