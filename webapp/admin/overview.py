"""The console's first page: the shop at a glance."""

from __future__ import annotations

from flask import current_app, render_template

from webapp.admin import bp
from webapp.services.analytics import overview_counts
from webapp.services.model_versions import active_version
from webapp.services.schedule_runs import schedule_overview
from webapp.services.serving_version import serving_status


@bp.get("/")
def index():
    """Catalog, traffic and model counts, with links into each area, and the beat schedules."""
    return render_template(
        "admin/index.html",
        counts=overview_counts(),
        active=active_version(),
        serving=serving_status(),
        schedule=schedule_overview(current_app.config),
    )
