"""Reading the catalog change feed (webapp.models.CatalogChange): "products saved after N".

The feed's numbers commit in order (webapp.models.product_changes explains how on
PostgreSQL), so a worker that has applied everything up to N misses nothing by asking for
the numbers after N, however late a change committed and whatever its updated_at stamp
says. A periodic full reconciliation (webapp.services.search_index.reconcile_catalog)
repairs anything written around the feed (a hand-run SQL update), and prunes old numbers;
a worker that fell behind the pruning reads the whole catalog again.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from webapp.extensions import db
from webapp.models import CatalogChange, Product

FEED_BATCH = 5_000  # numbers read per sync; a longer backlog is read over the next syncs
KEEP_CHANGES = 100_000  # numbers kept behind the newest, for workers that fall behind
_CHUNK = 500  # ids per IN (...) when reading the changed rows


def feed_head() -> int:
    """The newest number in the feed (0 when empty): read before a full read of the catalog."""
    return db.session.scalar(select(func.max(CatalogChange.seq))) or 0


def changes_after(seq: int) -> tuple[list[int], int] | None:
    """(products saved after number seq, the last number read); None when numbers after seq were pruned."""
    rows = db.session.execute(
        select(CatalogChange.seq, CatalogChange.product_id)
        .where(CatalogChange.seq > seq)
        .order_by(CatalogChange.seq)
        .limit(FEED_BATCH)
    ).all()
    if not rows:
        return [], seq
    if rows[0].seq != seq + 1:  # a rolled-back number (PostgreSQL, harmless), or pruned ones
        oldest = db.session.scalar(select(func.min(CatalogChange.seq)))
        if oldest is not None and oldest > seq + 1:
            return None  # maybe pruned (a rollback just before the oldest looks the same: a reload is safe)
    return list(dict.fromkeys(row.product_id for row in rows)), rows[-1].seq


def products_by_id(ids: list[int]) -> list[Product]:
    """The rows of these products as committed now (missing ones were deleted).

    populate_existing: an object this session loaded earlier is refreshed from the row, not
    returned from the identity map with the values of an older change."""
    rows: list[Product] = []
    for start in range(0, len(ids), _CHUNK):
        rows.extend(
            db.session.scalars(
                select(Product)
                .where(Product.id.in_(ids[start : start + _CHUNK]))
                .execution_options(populate_existing=True)
            )
        )
    return rows


def prune_feed(keep: int = KEEP_CHANGES) -> int:
    """Drop numbers more than `keep` behind the newest (its own transaction); returns how many."""
    cutoff = feed_head() - keep
    if cutoff <= 0:
        db.session.rollback()
        return 0
    removed = db.session.execute(delete(CatalogChange).where(CatalogChange.seq <= cutoff)).rowcount
    db.session.commit()
    return removed or 0
