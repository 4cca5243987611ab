"""JSON API: search, instant suggestions, feedback events and the visitor's history."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from webapp.api import recommend_routes, routes, suggest_routes, visitor_routes  # noqa: E402,F401  (routes register on bp)
