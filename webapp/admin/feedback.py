"""The feedback browser: recent click, add-to-cart and purchase events, filtered."""

from __future__ import annotations

from flask import render_template, request

from webapp.admin import bp
from webapp.models import EVENT_TYPES
from webapp.services.feedback_browser import EventFilters, list_events


@bp.get("/events")
def events():
    """Events newest first, filterable by type, visitor, product (external id) and query text."""
    filters = EventFilters.from_args(request.args)
    page = list_events(filters, request.args.get("page", 1, type=int))
    return render_template("admin/events.html", page=page, filters=filters, event_types=EVENT_TYPES)
