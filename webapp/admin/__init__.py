"""Admin console: every view sits behind the login guard (webapp.auth); pages by area."""

from __future__ import annotations

from typing import NamedTuple

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from webapp.auth import forget_request_state, guard_admin, wants_json
from webapp.errors import InputError

bp = Blueprint("admin", __name__)


class NavItem(NamedTuple):
    endpoint: str  # where the link goes
    label: str
    section: str  # highlighted for this endpoint and every "<section>_..." endpoint


# The console's menu, in order; an area adds itself with NAV.append(NavItem(...)) in its module.
NAV: list[NavItem] = [
    NavItem("admin.index", "Overview", "admin.index"),
    NavItem("admin.catalog", "Catalog", "admin.catalog"),
    NavItem("admin.analytics", "Search analytics", "admin.analytics"),
    NavItem("admin.events", "Feedback", "admin.events"),
    NavItem("admin.models", "Models", "admin.models"),
    NavItem("admin.experiments", "Experiments", "admin.experiments"),
    NavItem("admin.jobs", "Jobs", "admin.jobs"),
]

bp.before_request(guard_admin)
bp.teardown_request(forget_request_state)


@bp.after_app_request
def _no_store(response):
    """Admin pages (their errors too) hold shoppers' searches and the shop's settings: never kept
    by a browser or proxy cache."""
    if request.blueprint == "admin" or request.path.startswith("/admin/") or request.path == "/admin":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _layout() -> dict:
    endpoint = request.endpoint or ""
    active = next((n.section for n in NAV if endpoint == n.section or endpoint.startswith(n.section + "_")), None)
    can_change = bool(current_user.is_authenticated and current_user.can_change)
    return {"admin_nav": NAV, "admin_active": active, "can_change": can_change, "page_url": page_url}


def page_url(page: int) -> str:
    """This page's URL with its filters kept and another page number (for pagers)."""
    args = {**request.args.to_dict(), "page": page}
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def _error_page(status: int, message: str):
    if wants_json():
        return jsonify(error=message), status
    return render_template("admin/error.html", status=status, message=message), status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code == 413 and request.endpoint == "admin.catalog_import" and getattr(current_user, "can_change", False):
        limit_mb = (current_app.config.get("MAX_UPLOAD_BYTES") or 0) // (1024 * 1024)
        return _error_page(
            413,
            f"That file is larger than the {limit_mb} MB upload limit; split it, zip it, or import it with the CLI.",
        )
    return _error_page(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(InputError)
def _input_error(exc: InputError):
    return _error_page(400, str(exc))


from webapp.admin import (  # noqa: E402,F401
    analytics,
    auth,
    catalog,
    experiments,
    feedback,
    jobs,
    merchandising,
    models,
    overview,
    ranking,
    recommendations,
    suggestions,
    tuning,
)
