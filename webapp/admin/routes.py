"""Admin overview page."""

from __future__ import annotations

from flask import abort, current_app, render_template
from sqlalchemy import func, select

from webapp.admin import bp
from webapp.extensions import db
from webapp.models import Event, Product, SearchQuery


@bp.get("/")
def index():
    """Catalog and activity counts; closed until admin accounts exist (admin issue)."""
    if not current_app.config.get("ADMIN_OPEN", False):
        abort(401, "The admin console needs an admin login, which is not enabled yet.")
    counts = {
        "products": db.session.scalar(select(func.count()).select_from(Product)),
        "searches": db.session.scalar(select(func.count()).select_from(SearchQuery)),
        "events": db.session.scalar(select(func.count()).select_from(Event)),
    }
    return render_template("admin/index.html", counts=counts)
