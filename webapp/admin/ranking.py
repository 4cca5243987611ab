"""Stage-2 ranking: the fitted context ranker's weights and fit history, a refit, and the explain view."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from engine.ranking.context import CONTEXT_FEATURES
from webapp.admin import NAV, NavItem, bp
from webapp.errors import InputError
from webapp.models import ContextRankerFit
from webapp.services.context_fit import active_fit, fit_history, start_context_fit
from webapp.services.explain import explain_search

# After "Models": the ranker is the other thing the learning loop fits.
NAV.insert(
    next(i for i, n in enumerate(NAV) if n.endpoint == "admin.models") + 1,
    NavItem("admin.ranking", "Ranking", "admin.ranking"),
)

# The metrics a fit records, in the order shown: (key, label).
FIT_METRICS = (
    ("searches", "logged searches read"),
    ("pages", "pages with engagement"),
    ("train_pairs", "training pairs"),
    ("holdout_pairs", "held-out pairs"),
    ("holdout_accuracy", "held-out pair accuracy"),
    ("holdout_accuracy_relevance_only", "… relevance alone"),
    ("skipped_rows", "rows without every feature"),
    ("seconds", "to fit"),
)

# What each context feature measures (engine/ranking/context.py), for the tables' hover text.
FEATURE_HELP = {
    "relevance": "stage-1 rank as 10 / (10 + rank)",
    "ctr": "long-run engagement per impression, smoothed",
    "popularity_recent": "engagement within the short half-life",
    "trending": "short-horizon rate against the long one",
    "query_affinity": "engagement after this very query",
    "freshness": "how new the product is",
    "price_drop": "a recent price cut, by its size",
    "back_in_stock": "recently restocked",
    "profile_sim": "similarity of the session profile to the product",
    "brand_affinity": "the session's share of attention on this brand",
    "category_affinity": "the session's share of attention on this category",
    "price_fit": "the price sits in the session's price band",
}


def weights_chart(fit: ContextRankerFit | None) -> dict | None:
    """Horizontal bars: the weight of each context feature in the fit."""
    weights = ((fit.weights or {}).get("weights") or {}) if fit is not None else {}
    if not weights:
        return None
    data = [round(float(weights.get(name, 0.0)), 5) for name in CONTEXT_FEATURES]
    return {"labels": list(CONTEXT_FEATURES), "series": [{"label": "weight", "data": data}], "xLabel": "weight"}


@bp.get("/ranking")
def ranking():
    """The active context ranker: weights per feature, its metrics, and every recent fit."""
    fit = active_fit()
    return render_template(
        "admin/ranking.html",
        fit=fit,
        chart=weights_chart(fit),
        history=fit_history(),
        fit_metrics=FIT_METRICS,
        features=CONTEXT_FEATURES,
        feature_help=FEATURE_HELP,
    )


@bp.post("/ranking/refit")
def ranking_refit():
    """Fit the context ranker on logged feedback now (a job on the training queue)."""
    try:
        job = start_context_fit()
    except InputError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.ranking"))
    flash(f"Ranker fit queued as job {job.id}.", "info")
    return redirect(url_for("admin.jobs_detail", job_id=job.id))


@bp.get("/explain")
def ranking_explain():
    """A search as the shop answers it for a visitor, each signal's contribution per result; nothing is logged."""
    query = request.args.get("q", "").strip()
    explanation = explain_search(request.args) if query else None
    return render_template(
        "admin/explain.html",
        q=query,
        visitor=request.args.get("visitor", "").strip()[:64],
        explanation=explanation,
        feature_help=FEATURE_HELP,
    )
