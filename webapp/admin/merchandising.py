"""Merchandising: query rules (pin, hide, boost, bury, redirect, scheduled) and synonyms
(webapp.services.merchandising_admin). Analysts read; admins change."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.admin import NAV, NavItem, bp
from webapp.auth import admin_only
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import QueryRule
from webapp.services.merchandising import preview
from webapp.services.merchandising_admin import (
    delete_rule,
    export_synonyms,
    import_synonyms,
    list_rules,
    rule_form,
    save_rule,
)

NAV.insert(4, NavItem("admin.rules", "Rules & synonyms", "admin.rules"))


@bp.get("/rules")
def rules():
    """Every query rule, and the synonyms as a synonyms.txt text."""
    return render_template("admin/rules.html", rules=list_rules(), synonyms=export_synonyms(), errors=[])


@bp.post("/rules/synonyms")
def rules_synonyms():
    """Replace the synonyms with a pasted text or an uploaded synonyms.txt; a bad line refuses it all."""
    upload = request.files.get("file")
    text = upload.read().decode("utf-8", "replace") if upload and upload.filename else request.form.get("text", "")
    try:
        count = import_synonyms(text, current_user.email)
    except InputError as exc:
        flash(str(exc), "error")
        page = render_template("admin/rules.html", rules=list_rules(), synonyms=text, errors=exc.details)
        return page, 400
    flash(f"Saved {count} synonym rules; every worker applies them within a second.", "info")
    return redirect(url_for("admin.rules"))


@bp.get("/rules/preview")
def rules_preview():
    """A query's first results without and with the rules active now, side by side (nothing logged)."""
    query = request.args.get("q", "").strip()[:200]
    results = preview(query) if query else None
    return render_template("admin/rules_preview.html", q=query, results=results)


@bp.get("/rules/synonyms.txt")
def rules_synonyms_export():
    """The synonyms as a synonyms.txt file."""
    return Response(
        export_synonyms(),
        mimetype="text/plain",
        headers={"Content-Disposition": "attachment; filename=synonyms.txt"},
    )


def _form_page(rule_id: int | None, values: dict, status: int = 200):
    return render_template("admin/rule_form.html", rule_id=rule_id, form=values), status


@bp.route("/rules/new", methods=["GET", "POST"])
@admin_only
def rules_new():
    """Create a rule."""
    if request.method == "GET":
        return _form_page(None, rule_form(None))
    try:
        rule = save_rule(request.form, current_user.email)
    except InputError as exc:
        flash(str(exc), "error")
        return _form_page(None, request.form.to_dict(), 400)
    flash(f"Saved rule #{rule.id} for “{rule.query}”; every worker applies it within a second.", "info")
    return redirect(url_for("admin.rules"))


@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
def rules_edit(rule_id: int):
    """A rule's settings (admins may change them)."""
    rule = db.session.get(QueryRule, rule_id)
    if rule is None:
        abort(404, "No such rule.")
    if request.method == "GET":
        return _form_page(rule_id, {**rule_form(rule), "updated_by": rule.updated_by, "updated_at": rule.updated_at})
    try:
        save_rule(request.form, current_user.email, rule_id)
    except InputError as exc:
        flash(str(exc), "error")
        return _form_page(rule_id, request.form.to_dict(), 400)
    flash(f"Saved rule #{rule_id}; every worker applies it within a second.", "info")
    return redirect(url_for("admin.rules"))


@bp.post("/rules/<int:rule_id>/delete")
def rules_delete(rule_id: int):
    """Delete a rule."""
    flash(f"Deleted rule #{rule_id}." if delete_rule(rule_id) else "That rule was already deleted.", "info")
    return redirect(url_for("admin.rules"))
