"""The storefront's "Clear my history" button (webapp.services.visitor_history)."""

from __future__ import annotations

from flask import flash, redirect, url_for

from webapp.security import public_rate_limit
from webapp.services.visitor_history import clear_history
from webapp.storefront import bp
from webapp.visitors import current_visitor_id


@bp.post("/history/clear")
@public_rate_limit("events")  # the same budget as the API's clear: one per visitor, whichever asks
def clear_my_history():
    """Forget the visitor's searches and clicks for personalization; back to the cart page."""
    clear_history(current_visitor_id())
    flash("Your history is cleared: results are no longer shaped by what you searched, viewed or bought.")
    return redirect(url_for("storefront.cart"))
