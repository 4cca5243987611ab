"""The search use case: run the shared search path and log the query and its impressions.

While an A/B experiment runs, the visitor's variant chooses the model version and mode
(webapp.services.assignment); the search records the variant and, at the visitor's first
search under the experiment, their exposure, in the same transaction."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
from flask import current_app
from sqlalchemy import insert

from engine.ranking.context import CONTEXT_FEATURES
from engine.serving.searcher import SearchRequest, SearchResponse
from webapp.extensions import db
from webapp.models import Impression, SearchQuery, epoch, utcnow
from webapp.services.assignment import record_exposure, serving_for
from webapp.services.context_ranking import search_context
from webapp.services.impression_flush import count_impressions
from webapp.services.search_index import get_searcher
from webapp.services.search_params import normalize_query
from webapp.visitors import ensure_visitor_row


def _filters_json(request: SearchRequest) -> dict:
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(request.filters).items() if v not in (None, ())
    }


def _logged_features(response: SearchResponse) -> list[dict | None]:
    """Stage 2's features of each shown product as the shopper saw them (the context ranker's training data)."""
    staged = response.context
    shown = [h.card.id for h in response.hits]
    if staged is None:
        return [None] * len(shown)
    known = [pid for pid in shown if pid in staged.features]
    # One rounding over the page's matrix: per-value round() was a tenth of a search's time.
    values = np.round(np.array([staged.features[pid] for pid in known], dtype=np.float64), 5).tolist() if known else []
    logged = dict(zip(known, values, strict=True))
    return [
        {**dict(zip(CONTEXT_FEATURES, logged[pid], strict=True)), "explore": round(staged.explore.get(pid, 0.0), 5)}
        if pid in logged
        else None
        for pid in shown
    ]


def _insert_search(
    request: SearchRequest,
    visitor_id: str | None,
    source: str,
    response: SearchResponse,
    latency_ms: float,
    variant_id: int | None,
) -> SearchQuery:
    """Insert the search's row with one Core statement; returns it as a detached SearchQuery with its id.

    The ORM's unit of work (flush, then a re-select of the row after commit expired it) cost more
    than the search itself under concurrent load; nothing here needs the row in the session.
    """
    values = {
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
        "variant_id": variant_id,
        "created_at": utcnow(),
    }
    inserted = db.session.execute(insert(SearchQuery.__table__).values(values))
    return SearchQuery(id=inserted.inserted_primary_key[0], **values)


def search_and_log(
    request: SearchRequest, visitor_id: str | None, source: str = "storefront"
) -> tuple[SearchQuery, SearchResponse]:
    """Answer a search and record it with one impression per shown product, in one transaction."""
    searcher = get_searcher()
    serving = serving_for(visitor_id)
    started = time.perf_counter()
    context = (
        search_context(visitor_id, request.text, searcher, serving.bundle or searcher.bundle)
        if current_app.config["CONTEXT_RANKING"]
        else None
    )
    response = searcher.search(request, bundle=serving.bundle, mode=serving.mode, context=context)
    latency_ms = (time.perf_counter() - started) * 1000
    # Built before the first write: on SQLite the writer lock is held from it to the commit.
    shown = [
        {
            "product_id": h.card.id,
            "position": h.position,
            "ranker": response.ranker,
            "model_version_id": response.model_version_id,
            "features": features,
        }
        for h, features in zip(response.hits, _logged_features(response), strict=True)
    ]
    try:
        if visitor_id:
            ensure_visitor_row(visitor_id)
        query = _insert_search(request, visitor_id, source, response, latency_ms, serving.variant_id)
        if serving.new_exposure and visitor_id:
            # Exposed at this search's own stamp, so the analysis (searches at or after exposure) counts it.
            record_exposure(serving.experiment_id, serving.variant_id, visitor_id, query.created_at)
        if shown:  # one Core executemany for the page's impressions, not the ORM's bulk path
            for row in shown:
                row["search_id"] = query.id
            db.session.execute(insert(Impression.__table__), shown)
            count_impressions([row["product_id"] for row in shown], epoch(query.created_at))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    current_app.logger.debug("search %r: %d results in %.1f ms", request.text, response.total, latency_ms)
    return query, response
