"""Sign in and sign out."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from webapp.admin import bp
from webapp.auth import AdminIdentity, any_role, login_rate_limit, public, safe_next
from webapp.services.admin_users import authenticate


@bp.route("/login", methods=["GET", "POST"])
@public
@login_rate_limit
def login():
    """The sign-in form; failed attempts are rate-limited per address and email."""
    next_url = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(next_url))
        return render_template("admin/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")
    user = authenticate(email, request.form.get("password", ""))
    if user is None:
        g.login_failed = True
        flash("Wrong email or password.", "error")
        return render_template("admin/login.html", next_url=next_url, email=email[:254]), 200
    login_user(AdminIdentity(user))
    return redirect(safe_next(next_url))


@bp.post("/logout")
@any_role
def logout():
    """End the admin session (the shop's visitor cookie stays)."""
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("admin.login"))
