"""Recommendations: how each list does (impressions, CTR, add-to-cart rate by day) and why a product's lists hold what they do."""

from __future__ import annotations

from flask import render_template, request

from webapp.admin import NAV, NavItem, bp
from webapp.services.recommendation_stats import explain_product, parse_days, strategy_stats

NAV.insert(4, NavItem("admin.recommendations", "Recommendations", "admin.recommendations"))


@bp.get("/recommendations")
def recommendations():
    """Each list's figures over the last `days`, and with `product` (an external id) its lists explained."""
    days = parse_days(request.args.get("days"))
    product_id = request.args.get("product", "").strip()
    product, explained = explain_product(product_id) if product_id else (None, {})
    return render_template(
        "admin/recommendations.html",
        days=days,
        stats=strategy_stats(days),
        product=product,
        product_id=product_id,
        explained=explained,
    )
