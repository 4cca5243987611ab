"""Sign in, sign out, and confirm the password again before a destructive action."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import TooManyRequests

from webapp.admin import bp
from webapp.auth import AdminIdentity, any_role, forget_sign_in, mark_confirmed, mark_signed_in, public, safe_next
from webapp.login_limit import MESSAGE, give_back_login_attempt, take_login_attempt
from webapp.services.admin_users import authenticate, confirm_password, end_sessions


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """The sign-in form; attempts are counted per address and email before the password is checked."""
    next_url = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(next_url))
        return render_template("admin/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")
    if not take_login_attempt(email):
        raise TooManyRequests(MESSAGE)
    user = authenticate(email, request.form.get("password", ""))
    if user is None:
        flash("Wrong email or password.", "error")
        return render_template("admin/login.html", next_url=next_url, email=email[:254]), 200
    give_back_login_attempt(email)
    login_user(AdminIdentity(user))
    mark_signed_in()
    return redirect(safe_next(next_url))


@bp.route("/reauth", methods=["GET", "POST"])
def reauth():
    """Confirm the password to open destructive actions for a few minutes (same limit as sign-in)."""
    next_url = safe_next(request.values.get("next", ""))
    if request.method == "GET":
        return render_template("admin/reauth.html", next_url=next_url)
    if not take_login_attempt(current_user.email):
        raise TooManyRequests(MESSAGE)
    if not confirm_password(current_user.id, request.form.get("password", "")):
        flash("Wrong password.", "error")
        return render_template("admin/reauth.html", next_url=next_url), 200
    give_back_login_attempt(current_user.email)
    mark_confirmed()
    flash("Password confirmed.", "info")
    return redirect(next_url)


@bp.post("/logout")
@any_role
def logout():
    """End the admin session everywhere (every cookie of this account); the shop's visitor cookie stays."""
    end_sessions(current_user.id)
    logout_user()
    forget_sign_in()
    flash("Signed out.", "info")
    return redirect(url_for("admin.login"))
