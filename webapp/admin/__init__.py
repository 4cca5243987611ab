"""Admin console (a shell for now: access control and pages arrive with the admin issue)."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from webapp.admin import routes  # noqa: E402,F401
