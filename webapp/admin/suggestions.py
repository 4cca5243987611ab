"""Suggestions: the blocklist and the review of queries that became suggestible (webapp.services.suggestions)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.admin import NAV, NavItem, bp
from webapp.services.suggestion_admin import block_phrase, blocks, keep_suggestion, unblock
from webapp.services.suggestions import unreviewed_suggestions

NAV.insert(3, NavItem("admin.suggestions", "Suggestions", "admin.suggestions"))


@bp.get("/suggestions")
def suggestions():
    """The blocklist, and the suggestible queries no admin has reviewed yet, newest first."""
    return render_template("admin/suggestions.html", blocks=blocks(), pending=unreviewed_suggestions())


@bp.post("/suggestions/block")
def suggestions_block():
    """Block a word or phrase in suggestions and popular searches."""
    phrase = block_phrase(request.form.get("phrase", ""), current_user.email)
    flash(f"Blocked “{phrase}”: it leaves suggestions and popular searches.", "info")
    return redirect(url_for("admin.suggestions"))


@bp.post("/suggestions/unblock/<int:block_id>")
def suggestions_unblock(block_id: int):
    """Lift a block."""
    phrase = unblock(block_id)
    flash(f"Unblocked “{phrase}”." if phrase else "That block was already lifted.", "info")
    return redirect(url_for("admin.suggestions"))


@bp.post("/suggestions/keep")
def suggestions_keep():
    """Keep a reviewed suggestion: it stays suggestible and leaves the review list."""
    query = keep_suggestion(request.form.get("query", ""), current_user.email)
    flash(f"Kept “{query}”.", "info")
    return redirect(url_for("admin.suggestions"))
