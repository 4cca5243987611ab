"""A note on the storefront for signed-in staff while a model version builds ("search is
improving: model building, 37%"). Shoppers never see it, and it costs them nothing: the job
table is read only for a signed-in console user."""

from __future__ import annotations

from flask_login import current_user
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Job
from webapp.storefront import bp


def building_job() -> Job | None:
    """The newest model build that is queued or running, if any."""
    return db.session.scalar(
        select(Job)
        .where(Job.kind == "build_version", Job.status.in_(("queued", "running")))
        .order_by(Job.id.desc())
        .limit(1)
    )


@bp.context_processor
def _build_note() -> dict:
    if not current_user.is_authenticated:
        return {}
    return {"build_note": building_job()}
