"""Admin sign-in: the Flask-Login identity, the guard in front of every /admin route, roles,
the session's lifetime and re-authentication for destructive actions.

Every admin view is closed by default: the blueprint's before_request guard demands a
login unless the view is marked @public, and demands the admin role for any method that
changes something (POST, PUT, PATCH, DELETE) unless the view is marked @any_role.

A sign-in lives in the shop's session cookie (which lasts as long as the visitor id), so it
carries its own clock: it ends ADMIN_SESSION_HOURS after the password was given, and a view
marked @recent_auth (activating a model, hiding a product, stopping an experiment) asks for
the password again when it was given more than ADMIN_REAUTH_MINUTES ago. The cookie's id
carries the account's session version: logging out or changing the password bumps it, so
every session issued before ends on its next request, wherever its cookie went.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_login import UserMixin, current_user

from webapp.extensions import db, login_manager
from webapp.models import AdminUser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNED_IN_AT = "admin_at"  # session keys: when the password was given at sign-in, and last given at all
CONFIRMED_AT = "admin_confirmed_at"
View = TypeVar("View", bound=Callable)

login_manager.session_protection = "strong"  # a session cookie replayed from elsewhere is dropped
login_manager.login_message = "Please sign in to use the admin console."


def _session_token(user: AdminUser) -> str:
    # Derived from the hash and the session version: a new password or a logout ends every older session.
    return hashlib.sha256(f"{user.password_hash}:{user.session_version or 0}".encode()).hexdigest()[:16]


class AdminIdentity(UserMixin):
    """The signed-in account as the request sees it: a snapshot of the row, not the row."""

    def __init__(self, user: AdminUser) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self._token = _session_token(user)

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
    if user is None or not user.is_active or _session_token(user) != token or not _within(SIGNED_IN_AT, _lifetime()):
        return None
    return AdminIdentity(user)


def _lifetime() -> float:
    return current_app.config["ADMIN_SESSION_HOURS"] * 3600.0


def _within(key: str, seconds: float) -> bool:
    at = session.get(key)
    return isinstance(at, int | float) and 0 <= time.time() - at <= seconds


def mark_signed_in() -> None:
    """After a sign-in: the session's clock and its last password confirmation start now."""
    session[SIGNED_IN_AT] = session[CONFIRMED_AT] = time.time()


def mark_confirmed() -> None:
    """After a re-authentication: destructive actions are open for ADMIN_REAUTH_MINUTES."""
    session[CONFIRMED_AT] = time.time()


def forget_sign_in() -> None:
    session.pop(SIGNED_IN_AT, None)
    session.pop(CONFIRMED_AT, None)


def recent_auth(view: View) -> View:
    """Demand a password given within ADMIN_REAUTH_MINUTES for a changing request to this view."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if request.method in SAFE_METHODS or _within(CONFIRMED_AT, current_app.config["ADMIN_REAUTH_MINUTES"] * 60.0):
            return view(*args, **kwargs)
        if wants_json():
            return jsonify(error="re-authentication required", reauth_url=url_for("admin.reauth")), 401
        flash("Confirm your password to do that; then do it again.", "info")
        back = urlsplit(request.referrer or "")
        page = back.path + (f"?{back.query}" if back.query else "")
        return redirect(url_for("admin.reauth", next=safe_next(page)))

    return wrapper  # type: ignore[return-value]


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
