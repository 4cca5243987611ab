"""The storefront's recommendation lists: the same service as /api/recommendations, rendered in the page."""

from __future__ import annotations

from webapp.services.recommendations import ServedList, recommend
from webapp.visitors import current_visitor_id, visitor_has_no_feedback

PAGE_LIMIT = 6
HEADINGS = {
    "similar": "Similar products",
    "bought_together": "Frequently bought together",
    "for_you": "Recommended for you",
    "trending": "Trending now",
}


def page_lists(context: str, product_external_ids: list[str]) -> list[ServedList]:
    """The page's lists, logged; none when the catalog holds nothing to recommend."""
    if context == "cart" and not product_external_ids:
        return []
    return recommend(context, product_external_ids[:20], PAGE_LIMIT, current_visitor_id(), visitor_has_no_feedback())
