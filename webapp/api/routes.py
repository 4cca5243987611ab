"""Thin JSON routes: parse, call a service, serialise."""

from __future__ import annotations

from flask import current_app, jsonify, request

from webapp.api import bp
from webapp.errors import InputError
from webapp.security import public_rate_limit
from webapp.services.events import record_events
from webapp.services.search import search_and_log
from webapp.services.search_params import parse_search_args, parse_spell_arg
from webapp.services.serving_health import readiness
from webapp.visitors import current_visitor_id, feedback_visitor_id, visitor_has_no_feedback


@bp.get("/search")
@public_rate_limit("search")
def search():
    """Search the catalog; the response carries a search_id for feedback events."""
    search_request = parse_search_args(request.args, current_app.config["SEARCH_PAGE_SIZE"])
    correct = parse_spell_arg(request.args)
    query, response = search_and_log(
        search_request, current_visitor_id(), "api", visitor_has_no_feedback(), correct_spelling=correct
    )
    return jsonify(
        {
            "search_id": query.id,
            "query": search_request.text,
            "corrected_query": query.corrected_text,  # what was searched instead (spell=0: never)
            "page": search_request.page,
            "page_size": search_request.page_size,
            "total": response.total,  # results that match the query
            "related": response.related,  # results that do not, listed after the matching ones
            "fuzzy": response.fuzzy,
            "ranker": response.ranker,
            "redirect": response.redirect,  # a query rule's URL to send the shopper to instead; null: none
            "facets": {"brand": response.brand_counts},
            "results": [
                {
                    "position": hit.position,
                    "product_id": hit.card.external_id,
                    "title": hit.card.title,
                    "brand": hit.card.brand,
                    "price": hit.card.price,
                    "rating": hit.card.rating,
                    "rating_count": hit.card.rating_count,
                    "image_url": hit.card.image_url,
                    "score": round(hit.score, 4),
                    "matches": hit.matches,
                    "imposed": response.imposed.get(hit.card.id),  # "pin" / "boost": placed by a query rule
                }
                for hit in response.hits
            ],
        }
    )


@bp.post("/events")
@public_rate_limit("events")
def events():
    """Store a batch of click / add_to_cart / purchase events, all or nothing."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # a few KB of "[[[[..." nests deeper than the parser's stack: bad input, not a 500
        body = None
    if not isinstance(body, dict):
        raise InputError('body must be a JSON object like {"events": [...]}')
    if set(body) - {"events"}:  # as docs/openapi.yaml says (additionalProperties: false)
        raise InputError(f"unknown fields: {', '.join(sorted(map(str, set(body) - {'events'})))[:200]}")
    stored = record_events(body.get("events"), feedback_visitor_id(), current_app.config["EVENTS_MAX_BATCH"])
    return jsonify({"stored": len(stored), "ids": [e.id for e in stored]}), 201


@bp.get("/health")
def health():
    """Readiness for load balancers: 503 when this worker cannot serve the active model version."""
    body, code = readiness()
    return jsonify(body), code
