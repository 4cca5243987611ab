"""Admin sign-in: the Flask-Login identity, the guard in front of every /admin route, roles,
and the rate limit on login attempts.

Every admin view is closed by default: the blueprint's before_request guard demands a
login unless the view is marked @public, and demands the admin role for any method that
changes something (POST, PUT, PATCH, DELETE) unless the view is marked @any_role.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, current_app, g, jsonify, redirect, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import UserMixin, current_user

from webapp.extensions import db, limiter, login_manager
from webapp.models import AdminUser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_IP_LIMIT = "30 per minute"  # across emails, so one address cannot spray many accounts
View = TypeVar("View", bound=Callable)

login_manager.session_protection = "strong"  # a session cookie replayed from elsewhere is dropped
login_manager.login_message = "Please sign in to use the admin console."


def _session_token(password_hash: str) -> str:
    # Derived from the hash: changing a password ends every session opened with the old one.
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class AdminIdentity(UserMixin):
    """The signed-in account as the request sees it: a snapshot of the row, not the row."""

    def __init__(self, user: AdminUser) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self._token = _session_token(user.password_hash)

    def get_id(self) -> str:
        return f"{self.id}:{self._token}"

    @property
    def can_change(self) -> bool:
        """Admins change things; analysts only read."""
        return self.role == "admin"


@login_manager.user_loader
def _load_identity(raw: str) -> AdminIdentity | None:
    user_id, _, token = raw.partition(":")
    user = db.session.get(AdminUser, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.is_active or _session_token(user.password_hash) != token:
        return None
    return AdminIdentity(user)


def wants_json() -> bool:
    """JSON endpoints (paths ending .json, or clients asking for JSON) get JSON errors."""
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return jsonify(error="login required"), 401
    target = request.full_path.rstrip("?") if request.method in SAFE_METHODS else None
    return redirect(url_for("admin.login", next=target))


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path inside the admin, never another site."""
    # No control characters: a CR or LF in a Location header is a server error (or header injection).
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
    ):
        return target
    return url_for("admin.index")


def public(view: View) -> View:
    """Mark an admin view as open to anonymous visitors (the login page only)."""
    view._admin_public = True  # type: ignore[attr-defined]
    return view


def any_role(view: View) -> View:
    """Mark a changing admin view as allowed to analysts too (logout)."""
    view._admin_any_role = True  # type: ignore[attr-defined]
    return view


def admin_only(view: View) -> View:
    """Refuse analysts even on GET (pages that exist only to change something, such as forms)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.can_change:
            abort(403, "Only admins can do this; your account can read but not change.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def guard_admin():
    """before_request for the admin blueprint: login for every view, the admin role for changes."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "_admin_public", False):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if (
        request.method not in SAFE_METHODS
        and not current_user.can_change
        and not getattr(view, "_admin_any_role", False)
    ):
        abort(403, "Only admins can change things; your account can read but not change.")
    return None


def forget_request_state(_exc: BaseException | None = None) -> None:
    """teardown_request: drop what this module and Flask-Login keep on g for one request.

    g belongs to the app context; where one outlives a request (tests, scripts that push
    a context and make several requests), a cached user must not carry into the next."""
    g.pop("_login_user", None)
    g.pop("login_failed", None)


def _login_key() -> str:
    email = request.form.get("email", "").strip().lower()[:254]
    return f"{get_remote_address()}|{email}"


def _login_failed(_response) -> bool:
    # Only failed attempts count: a team signing in often is never locked out by its successes.
    return bool(g.get("login_failed"))


def login_rate_limit(view: View) -> View:
    """Failed logins per IP and email (ADMIN_LOGIN_LIMIT), and per IP across emails."""
    message = "Too many failed sign-in attempts. Wait a minute and try again."
    limited = limiter.limit(
        lambda: current_app.config["ADMIN_LOGIN_LIMIT"],
        methods=["POST"],
        key_func=_login_key,
        deduct_when=_login_failed,
        error_message=message,
    )(view)
    return limiter.limit(LOGIN_IP_LIMIT, methods=["POST"], deduct_when=_login_failed, error_message=message)(limited)
