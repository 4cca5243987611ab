"""The visitor's own data: clearing their history (webapp.services.visitor_history)."""

from __future__ import annotations

from flask import jsonify

from webapp.api import bp
from webapp.security import public_rate_limit
from webapp.services.visitor_history import clear_history
from webapp.visitors import current_visitor_id


@bp.post("/visitor/history/clear")
@public_rate_limit("events")  # a write on the visitor's behalf: it draws on their feedback budget
def clear_visitor_history():
    """Unlink the visitor's searches and events; personalization starts over from the next search."""
    return jsonify({"cleared": clear_history(current_visitor_id())})
