"""Instant search: suggestions as the shopper types (popular queries and product titles)."""

from __future__ import annotations

from flask import jsonify, request

from webapp.api import bp
from webapp.security import public_rate_limit
from webapp.services.instant_suggest import parse_suggest_args, suggest_for


@bp.get("/suggest")
@public_rate_limit("suggest")
def suggest():
    """Up to `limit` suggestions for `q`, best first; product suggestions name the product."""
    text, limit = parse_suggest_args(request.args)
    return jsonify(
        {
            "query": text,
            "suggestions": [{"text": s.text, "kind": s.kind, "product_id": s.ref} for s in suggest_for(text, limit)],
        }
    )
