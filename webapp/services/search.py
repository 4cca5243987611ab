"""The search use case: run the shared search path and log the query and its impressions.

While an A/B experiment runs, the visitor's variant chooses the model version and mode
(webapp.services.assignment); the search records the variant and, at the visitor's first
search under the experiment, their exposure, in the same transaction.

Where the search is written: in a gunicorn worker, after the response, from the worker's
journal (webapp.services.search_log); elsewhere, and for a visitor's first search under an
experiment, in the request's own transaction (`_store_now`)."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from flask import current_app
from sqlalchemy import insert

from engine.ranking.exploration import EXPLORED, adjacent_swaps
from engine.serving.searcher import SearchRequest, SearchResponse
from webapp.extensions import db
from webapp.models import Impression, SearchQuery, epoch, utcnow
from webapp.services.assignment import Serving, record_exposure, serving_for
from webapp.services.client_hash import request_client_hash
from webapp.services.context_ranking import search_context
from webapp.services.impression_flush import count_impressions
from webapp.services.logged_features import logged_features
from webapp.services.merchandising import arranger_for, record_outcome
from webapp.services.search_ids import reserve
from webapp.services.search_index import get_searcher
from webapp.services.search_log import search_log_for
from webapp.services.search_params import normalize_query
from webapp.services.spelling import correct_query
from webapp.visitors import ensure_visitor_row

_EXPLORE_RNG = random.Random()  # which pages explore: no need to be reproducible, only unbiased


def _filters_json(request: SearchRequest) -> dict:
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(request.filters).items() if v not in (None, ())
    }


@dataclass(frozen=True, slots=True)
class LoggedSearch:
    """A search as logged: its id and its row's values (a detached ORM object cost a twentieth of a search)."""

    id: int
    visitor_id: str | None
    text: str
    normalized: str
    filters: dict
    sort: str
    page: int
    result_count: int
    latency_ms: float
    source: str
    fuzzy: bool
    corrected_text: str | None
    client_hash: str | None
    variant_id: int | None
    created_at: datetime


def _search_row(
    request: SearchRequest,
    visitor_id: str | None,
    source: str,
    response: SearchResponse,
    latency_ms: float,
    variant_id: int | None,
    corrected_text: str | None = None,
) -> dict:
    """The search's row, without its id."""
    return {
        "visitor_id": visitor_id,
        "text": request.text,
        "normalized": normalize_query(request.text),
        "filters": _filters_json(request),
        "sort": request.sort,
        "page": request.page,
        "result_count": response.total,
        "latency_ms": round(latency_ms, 3),
        "source": source,
        "fuzzy": response.fuzzy,
        "corrected_text": corrected_text,
        "client_hash": request_client_hash(),
        "variant_id": variant_id,
        "created_at": utcnow(),
    }


def _store_now(row: dict, shown: list[dict], serving: Serving, visitor_id: str | None) -> int:
    """Write the search, its impressions and any new exposure in this request's transaction; returns its id.

    One Core insert per table: the ORM's unit of work (flush, then a re-select of the row after
    commit expired it) cost more than the search itself under concurrent load.
    """
    try:
        if visitor_id:
            ensure_visitor_row(visitor_id)
        values = row
        if db.session.get_bind().dialect.name != "postgresql":
            # Not SQLite's max + 1: that may be an id a worker reserved and has not written yet.
            values = {"id": reserve(db.session.connection(), 1)[0], **row}
        search_id = db.session.execute(insert(SearchQuery.__table__).values(values)).inserted_primary_key[0]
        if serving.new_exposure and visitor_id:
            # Exposed at this search's own stamp, so the analysis (searches at or after exposure) counts it.
            record_exposure(serving.experiment_id, serving.variant_id, visitor_id, row["created_at"])
        if shown:  # one Core executemany for the page's impressions, not the ORM's bulk path
            db.session.execute(insert(Impression.__table__), [{**r, "search_id": search_id} for r in shown])
            count_impressions([r["product_id"] for r in shown], epoch(row["created_at"]))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return search_id


def _journal(row: dict, shown: list[dict], serving: Serving) -> int | None:
    """Hand the search to this worker's search log; None when it must be written in the request.

    A visitor's first search under an experiment stays in the request: their assignment row is
    what makes their next search say "not new" (webapp.services.assignment.serving_for).
    """
    search_log = search_log_for(current_app._get_current_object())
    if search_log is None or serving.new_exposure:
        return None
    try:
        search_id = search_log.append(row, shown)
    except OSError as exc:  # the journal's disk: this search is written now instead (its id unused)
        current_app.logger.warning("search journal refused a search (%s); writing it in the request", exc)
        return None
    if shown and count_impressions([r["product_id"] for r in shown], epoch(row["created_at"])):
        db.session.commit()  # counted inline (an interval of 0, the tests'): no search transaction to ride on
    return search_id


def search_and_log(
    request: SearchRequest,
    visitor_id: str | None,
    source: str = "storefront",
    no_feedback: bool = False,
    correct_spelling: bool = True,
) -> tuple[LoggedSearch, SearchResponse]:
    """Answer a search and record it with one impression per shown product (webapp.services.search_log).

    `no_feedback`: the visitor is known to have recorded no event yet (webapp.visitors).
    `correct_spelling`: search the spelling correction of the text, if one is found
    (webapp.services.spelling); the log keeps the typed text and the correction beside it.
    """
    searcher = get_searcher()
    typed = request
    correction = correct_query(request.text) if correct_spelling else None
    if correction is not None:
        request = replace(request, text=correction.text)
    serving = serving_for(visitor_id)
    started = time.perf_counter()
    context = (
        search_context(visitor_id, request.text, searcher, serving.bundle or searcher.bundle, no_feedback)
        if current_app.config["CONTEXT_RANKING"]
        else None
    )
    arranger = arranger_for(request.text, searcher)
    response = searcher.search(request, bundle=serving.bundle, mode=serving.mode, context=context, arrange=arranger)
    record_outcome(response, arranger)
    # Exploration never moves a page the shop's rules arranged (their positions are imposed).
    share = current_app.config["EXPLORATION_SHARE"] if request.sort == "relevance" and arranger is None else 0.0
    explored = adjacent_swaps(response.hits, share, _EXPLORE_RNG)
    if explored is not None:  # logged as such: the impressions' ranker ends in EXPLORED
        response.hits, response.ranker = explored, response.ranker + EXPLORED
    latency_ms = (time.perf_counter() - started) * 1000
    # Built before the first write: on SQLite the writer lock is held from it to the commit.
    shown_ids = [h.card.id for h in response.hits]
    shown = [
        {
            "product_id": h.card.id,
            "position": h.position,
            "ranker": response.ranker,
            "model_version_id": response.model_version_id,
            "features": features,
            "imposed": response.imposed.get(h.card.id),  # a rule's position is not relevance evidence
        }
        for h, features in zip(response.hits, logged_features(response.context, shown_ids), strict=True)
    ]
    row = _search_row(
        typed, visitor_id, source, response, latency_ms, serving.variant_id, correction and correction.text
    )
    search_id = _journal(row, shown, serving)
    if search_id is None:
        search_id = _store_now(row, shown, serving, visitor_id)
    query = LoggedSearch(id=search_id, **row)
    current_app.logger.debug("search %r: %d results in %.1f ms", request.text, response.total, latency_ms)
    return query, response
