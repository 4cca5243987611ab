"""Recommendation lists logged like search pages, and the checks events from them must pass.

Each list served is one row (who, where, which strategy, the anchor, the model version) and
one row per position (the product, the strategy part that chose it and its score), so the
same feedback loop that reads search impressions can read these: an event names the list's
id and position, and counts only for a list its own visitor was shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import select

from engine.recommending.items import Recommended
from webapp.extensions import db
from webapp.models import RecommendationItem, RecommendationList, utcnow

SHOWN_HOURS = 24  # a recommended product counts as shown to its visitor (for events without a list id) this long


def log_list(
    visitor_id: str | None,
    context: str,
    name: str,
    strategy: str,
    items: Sequence[Recommended],
    anchor_id: int | None,
    version_id: int | None,
    latency_ms: float,
) -> RecommendationList:
    """Add one served list and its positions to the session (the caller commits once for the page)."""
    row = RecommendationList(
        visitor_id=visitor_id,
        context=context,
        name=name,
        strategy=strategy,
        anchor_product_id=anchor_id,
        model_version_id=version_id,
        latency_ms=latency_ms,
        created_at=utcnow(),
    )
    db.session.add(row)
    db.session.flush()  # the id: the response carries it for the events
    db.session.add_all(
        RecommendationItem(
            recommendation_id=row.id,
            product_id=item.product_id,
            position=position,
            source=item.source,
            score=item.score,
            features={"source": item.source, "score": round(item.score, 6)},
        )
        for position, item in enumerate(items, start=1)
    )
    return row


def recommendation_errors(wanted: Iterable[tuple[int, int, int, int | None]], visitor_id: str) -> list[dict]:
    """Errors for events (index, recommendation id, product id, position or None) naming a list
    that is not this visitor's, or a product not shown (at that position) in it."""
    wanted = list(wanted)
    if not wanted:
        return []
    ids = {rid for _, rid, _, _ in wanted}
    owners = dict(
        db.session.execute(
            select(RecommendationList.id, RecommendationList.visitor_id).where(RecommendationList.id.in_(ids))
        ).all()
    )
    shown: set[tuple] = set()
    for rid, pid, position in db.session.execute(
        select(RecommendationItem.recommendation_id, RecommendationItem.product_id, RecommendationItem.position).where(
            RecommendationItem.recommendation_id.in_(ids)
        )
    ):
        shown |= {(rid, pid, position), (rid, pid, None)}
    errors = []
    for index, rid, pid, position in wanted:
        if rid not in owners or owners[rid] != visitor_id:
            # Feedback counts only for a list this visitor was shown: nobody can forge others' clicks.
            errors.append({"index": index, "error": f"unknown recommendation {rid}"})
        elif (rid, pid, position) not in shown:
            where = "at that position in" if position is not None else "in"
            errors.append({"index": index, "error": f"product was not shown {where} that recommendation"})
    return errors


def recommended_products(visitor_id: str, product_ids: Iterable[int]) -> set[int]:
    """Those of `product_ids` that a recommendation list showed this visitor lately (SHOWN_HOURS).

    For the check that an event without a search or list id names a product its visitor was shown.
    """
    product_ids = set(product_ids)
    if not product_ids or not visitor_id:
        return set()
    since = utcnow() - timedelta(hours=SHOWN_HOURS)
    return set(
        db.session.scalars(
            select(RecommendationItem.product_id)
            .join(RecommendationList, RecommendationList.id == RecommendationItem.recommendation_id)
            .where(
                RecommendationList.visitor_id == visitor_id,
                RecommendationList.created_at >= since,
                RecommendationItem.product_id.in_(product_ids),
            )
            .distinct()
        )
    )
