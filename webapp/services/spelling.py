"""Each web worker's spelling corrector (engine.serving.spelling), from the shop's own words.

Two vocabularies: the catalog's (titles, brands, categories of the worker's searcher, rebuilt
when the catalog changed, about a second per 7,000 products) and the query log's (the words
of the queries the suggestion rule lets everyone see, webapp.services.suggestions, weighted by
their visitors; so one client cannot teach the shop a "correction"). Both are refreshed at most
every SUGGEST_REFRESH_SECONDS; requests meanwhile use the current corrector, and wait only
before a worker's first one exists.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from engine.serving.spelling import Correction, Speller, Vocabulary, catalog_vocabulary, words_of
from webapp.extensions import db
from webapp.services.search_index import searcher_state
from webapp.services.suggestions import popular_query_counts

_NEVER = float("-inf")


class _SpellState:
    def __init__(self) -> None:
        self.catalog = Vocabulary({})
        self.catalog_from: dict[int, tuple[str, str, str]] | None = None
        self.logged = Vocabulary({})
        self.speller = Speller([])
        self.built_at = _NEVER
        self.building = threading.Lock()


def _state() -> _SpellState:
    state = current_app.extensions.get("kairos.spelling")
    if state is None:
        state = current_app.extensions.setdefault("kairos.spelling", _SpellState())
    return state


def current_speller() -> Speller:
    """This worker's corrector, refreshed first if it is older than SUGGEST_REFRESH_SECONDS."""
    state = _state()
    interval = current_app.config["SUGGEST_REFRESH_SECONDS"]
    if time.monotonic() - state.built_at >= interval and state.building.acquire(blocking=state.built_at == _NEVER):
        try:
            if time.monotonic() - state.built_at >= interval:
                _refresh(state)
        finally:
            state.building.release()
    return state.speller


def _refresh(state: _SpellState) -> None:
    config = current_app.config
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
