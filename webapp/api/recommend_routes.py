"""Recommendations beside search: the lists of a product, cart or home page, each with its id for events."""

from __future__ import annotations

from flask import jsonify, request, session

from webapp.api import bp
from webapp.errors import InputError
from webapp.security import public_rate_limit
from webapp.services.recommendations import MAX_ANCHORS, parse_context, parse_limit, recommend, served_json
from webapp.visitors import current_visitor_id, visitor_has_no_feedback


def _anchor_args(context: str) -> list[str]:
    """product_id (comma-separated for a cart); a cart without them reads the visitor's cart cookie."""
    raw = request.args.get("product_id", "")
    if len(raw) > 64 * MAX_ANCHORS:
        raise InputError("product_id is too long")
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if context == "home" and ids:
        raise InputError("context=home takes no product_id")
    if context == "cart" and not ids:
        ids = [line["pid"] for line in session.get("cart", []) if isinstance(line, dict) and "pid" in line]
    return ids


@bp.get("/recommendations")
@public_rate_limit("search")
def recommendations():
    """The page's recommendation lists; events from one name its recommendation_id and position."""
    context = parse_context(request.args.get("context"))
    limit = parse_limit(request.args.get("limit"))
    served = recommend(context, _anchor_args(context), limit, current_visitor_id(), visitor_has_no_feedback())
    return jsonify({"context": context, "lists": [served_json(s) for s in served]})
