"""Catalog pages: list and search, create, edit, hide or show, import a file."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from webapp.admin import bp
from webapp.auth import admin_only, recent_auth, safe_next
from webapp.errors import InputError
from webapp.services.catalog_admin import (
    STATUSES,
    create_product,
    get_product,
    import_job,
    list_products,
    queue_upload,
    set_product_active,
    update_product,
)


@bp.get("/catalog")
def catalog():
    """Products, searchable by title, brand or external id, paginated."""
    q = request.args.get("q", "")[:200]
    status = request.args.get("status", "all")
    status = status if status in STATUSES else "all"
    page = list_products(q, status, request.args.get("page", 1, type=int))
    return render_template("admin/catalog.html", page=page, q=q, status=status, statuses=STATUSES)


@bp.route("/catalog/new", methods=["GET", "POST"])
@admin_only
def catalog_new():
    """Create a product; it is searchable in every worker within the index sync interval."""
    form = request.form
    if request.method == "POST":
        try:
            product = create_product(form)
        except InputError as exc:
            flash(str(exc), "error")
            return render_template("admin/product_form.html", product=None, form=form), 400
        flash(f"Created {product.external_id}.", "info")
        return redirect(url_for("admin.catalog_edit", product_id=product.id))
    return render_template("admin/product_form.html", product=None, form={})


@bp.route("/catalog/<int:product_id>", methods=["GET", "POST"])
def catalog_edit(product_id: int):
    """A product's fields; admins can save changes, analysts read them."""
    product = get_product(product_id) or abort(404, f"There is no product {product_id}.")
    if request.method == "POST":
        try:
            product, changed = update_product(product_id, request.form)
        except InputError as exc:
            flash(str(exc), "error")
            return render_template("admin/product_form.html", product=product, form=request.form), 400
        flash(f"Saved {product.external_id}." if changed else "Nothing changed.", "info")
        return redirect(url_for("admin.catalog_edit", product_id=product.id))
    return render_template("admin/product_form.html", product=product, form=product.to_dict())


@bp.post("/catalog/<int:product_id>/active")
@recent_auth
def catalog_active(product_id: int):
    """Hide (deactivate) or show (reactivate) a product."""
    get_product(product_id) or abort(404, f"There is no product {product_id}.")
    active = request.form.get("active") == "1"
    product = set_product_active(product_id, active)
    flash(f"{product.external_id} is {'active' if active else 'hidden from the shop'}.", "info")
    back = request.form.get("back", "")
    return redirect(back if back and safe_next(back) == back else url_for("admin.catalog_edit", product_id=product.id))


@bp.route("/catalog/import", methods=["GET", "POST"])
@admin_only
def catalog_import():
    """Upload a catalog file; a background job imports it, and its report page follows the job."""
    limit_mb = current_app.config["MAX_UPLOAD_BYTES"] // (1024 * 1024)
    if request.method == "GET":
        return render_template("admin/catalog_import.html", limit_mb=limit_mb)
    try:
        job = queue_upload(request.files.get("file"), reactivate=request.form.get("reactivate") == "1")
    except InputError as exc:
        flash(str(exc), "error")
        return render_template("admin/catalog_import.html", limit_mb=limit_mb), 400
    except Exception as exc:  # the broker refused the job: start_job failed its row with the reason
        current_app.logger.warning("catalog import not queued: %s", exc)
        flash("The import could not be queued (the task broker is not reachable); try again shortly.", "error")
        return render_template("admin/catalog_import.html", limit_mb=limit_mb), 503
    return redirect(url_for("admin.catalog_import_report", job_id=job.id))


@bp.get("/catalog/import/<int:job_id>")
def catalog_import_report(job_id: int):
    """An import job's progress and, once done, its report by line (read from the job row)."""
    job = import_job(job_id) or abort(404, f"There is no catalog import {job_id}.")
    return render_template("admin/catalog_import_report.html", job=job, result=job.result or {})
