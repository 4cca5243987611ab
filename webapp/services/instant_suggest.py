"""Each web worker's instant-search suggestions (engine.serving.suggest), kept fresh.

The queries are those the suggestion rule lets every shopper see (webapp.services.suggestions:
distinct visitors, networks and hours, with results, minus the admin's blocklist).
A gunicorn worker's follower thread rebuilds them (webapp.services.serving_follower);
without one, whichever request finds the index older than SUGGEST_REFRESH_SECONDS rebuilds it; requests
meanwhile keep answering from the current index (the build lock is one they never wait on,
except before the very first index exists). A refresh re-reads the popular queries (a few
milliseconds to index); the product titles' part is rebuilt only when the worker's catalog
changed since the previous refresh.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from engine.serving.suggest import SuggestEntry, SuggestIndex, Suggestion
from webapp.errors import InputError
from webapp.extensions import db
from webapp.services.background_rebuild import start_rebuild
from webapp.services.search_index import follower_runs, searcher_state, sync_searcher
from webapp.services.search_params import MAX_QUERY_CHARS
from webapp.services.suggestions import popular_query_counts

DEFAULT_LIMIT = 8
MAX_LIMIT = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NEVER = float("-inf")  # monotonic() counts from boot: 0.0 could look fresh

log = logging.getLogger(__name__)


class _SuggestState:
    def __init__(self) -> None:
        self.index = SuggestIndex()
        self.products: dict[int, tuple[str, int, str]] | None = None  # what the titles' part was built from
        self.built_at = _NEVER
        self.building = threading.Lock()


def parse_suggest_args(args: MultiDict) -> tuple[str, int]:
    """(q, limit) from the query string, or InputError naming the bad parameter."""
    text = args.get("q", "")
    if len(text) > MAX_QUERY_CHARS:
        raise InputError(f"q must be at most {MAX_QUERY_CHARS} characters")
    if _CONTROL.search(text):
        raise InputError("q must not contain control characters")
    raw = args.get("limit", "").strip() or str(DEFAULT_LIMIT)  # empty, as a form sends it: the default
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InputError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return text, int(raw)


def suggest_for(text: str, limit: int) -> list[Suggestion]:
    """Suggestions for what the shopper has typed so far (none for blank input)."""
    if not text.strip():
        return []
    return current_suggest_index().suggest(text, limit)


def suggest_state() -> _SuggestState:
    """This worker's suggestion state (one per app)."""
    state = current_app.extensions.get("kairos.suggest")
    if state is None:
        # setdefault is atomic: racing first requests all get the one state that went in first.
        state = current_app.extensions.setdefault("kairos.suggest", _SuggestState())
    return state


def current_suggest_index() -> SuggestIndex:
    """This worker's suggestion index, rebuilt first if it is older than SUGGEST_REFRESH_SECONDS.

    With a follower (webapp.services.serving_follower) rebuilding it, the index it built.
    """
    state = suggest_state()
    if state.built_at != _NEVER and follower_runs():
        return state.index
    refresh_suggestions_if_due()
    return state.index


def refresh_suggestions_if_due() -> None:
    """Rebuild the index if it is older than SUGGEST_REFRESH_SECONDS (never waiting on another builder)."""
    state = suggest_state()
    interval = current_app.config["SUGGEST_REFRESH_SECONDS"]
    if time.monotonic() - state.built_at < interval:
        return
    # Only before the first index exists is there nothing better to answer from than waiting.
    if state.building.acquire(blocking=state.built_at == _NEVER):
        try:
            if time.monotonic() - state.built_at >= interval:
                refresh_suggest_index(state)
        finally:
            state.building.release()


def refresh_suggestions_in_background() -> threading.Thread | None:
    """The follower's step: start a due rebuild in a thread of its own, unless one is running.

    Rebuilding the titles' part takes a second or more; in the follower's own thread it would
    hold back the catalog sync that long.
    """
    state = suggest_state()
    interval = current_app.config["SUGGEST_REFRESH_SECONDS"]
    if time.monotonic() - state.built_at < interval:
        return None

    def due_rebuild() -> None:
        if time.monotonic() - state.built_at >= interval:  # another rebuild may have run meanwhile
            refresh_suggest_index(state)

    return start_rebuild(state.building, "suggest-rebuild", due_rebuild)


def refresh_suggest_index(state: _SuggestState) -> None:
    """Rebuild from the popular queries and the worker's catalog; on a database error keep the old index."""
    config = current_app.config
    try:
        queries = popular_query_counts(
            limit=config["SUGGEST_MAX_QUERIES"],
            days=config["SUGGEST_QUERY_DAYS"],
            min_visitors=config["SUGGEST_MIN_VISITORS"],
        )
        if not follower_runs():  # else the follower keeps the catalog
            sync_searcher()  # titles only: no need to follow the active model version here
        # A C-level copy of the dict, atomic under the GIL while a sync applies changes.
        cards = list(searcher_state().searcher.cards.values())
    except SQLAlchemyError as exc:
        if state.built_at == _NEVER:
            raise  # nothing to fall back on: the request answers 503 and the next one retries
        db.session.rollback()
        current_app.logger.warning("suggestions not refreshed, serving the previous ones: %s", exc)
        state.built_at = time.monotonic()
        return
    query_entries = [SuggestEntry(text, visitors, "query") for text, visitors in queries]
    products = {c.id: (c.title, c.rating_count, c.external_id) for c in cards}
    if products == state.products:
        state.index = state.index.with_queries(query_entries)
    else:
        titles = [SuggestEntry(title, weight, "product", ref) for title, weight, ref in products.values()]
        state.index = SuggestIndex(query_entries + titles)
        state.products = products
    state.built_at = time.monotonic()
