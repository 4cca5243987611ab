"""Stamps a product's price cuts and restocks on every save, whichever path saved it, and
numbers the save in the catalog change feed (CatalogChange) in the same transaction.

The importer, the admin form and the API all change products; hooking the session's
flush sees them all, with the attribute history telling the old value from the new.

The feed's numbers must commit in order, or a worker that read "changes after N" could
step past a number that commits later. SQLite has one writer at a time, so they do.
PostgreSQL hands out sequence values at insert, not at commit, so two transactions can
commit out of order; a transaction that saves products therefore takes a transaction-scoped
advisory lock before it writes them (before_flush), held to its commit: catalog writers
take turns, and their numbers commit in order. Re-reading a window of recent numbers was
the other way; it needs a bound on how late a commit may come, which is what the feed is
for not needing. Catalog writes are rare beside reads (an import commits per chunk), so
taking turns costs little. Taking the lock before the product rows are written means a
writer never waits on it while holding a product row another writer needs.
"""

from __future__ import annotations

from itertools import chain

from sqlalchemy import event, func, insert, inspect, select
from sqlalchemy.orm import Session

from webapp.models.base import utcnow
from webapp.models.catalog import CatalogChange, Product

FEED_LOCK = 0x4B434346  # the advisory lock key catalog writers take on PostgreSQL ("KCCF")


def _old_new(product: Product, name: str) -> tuple[object, object] | None:
    history = inspect(product).attrs[name].history
    if not history.has_changes() or not history.deleted:
        return None  # unchanged, or the old value was never loaded (nothing to compare)
    return history.deleted[0], history.added[0] if history.added else None


def stamp_changes(product: Product) -> None:
    """Stamp a price cut or a restock; undo the stamp when the change is undone."""
    price = _old_new(product, "price")
    if price is not None:
        old, new = price
        if isinstance(old, int | float) and isinstance(new, int | float) and 0 <= new < old:
            product.price_dropped_at = utcnow()
            product.price_drop = round((old - new) / old, 4)
        elif isinstance(new, int | float) and isinstance(old, int | float) and new > old:
            # The price went back up: the cut no longer holds, so it must not keep lifting the product.
            product.price_dropped_at, product.price_drop = None, 0.0
    stock = _old_new(product, "in_stock")
    if stock is not None and stock[0] is False and stock[1] is True:
        product.restocked_at = utcnow()
    elif stock is not None and stock[0] is True and stock[1] is False:
        product.restocked_at = None  # sold out again: no longer "back in stock"


def _saved_products(session: Session) -> list[Product]:
    return [o for o in chain(session.new, session.dirty, session.deleted) if isinstance(o, Product)]


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context, _instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, Product):
            stamp_changes(obj)
    if _saved_products(session) and session.get_bind().dialect.name == "postgresql":
        session.connection().execute(select(func.pg_advisory_xact_lock(FEED_LOCK)))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    """Number every product this flush wrote (the pre-flush lists and histories are still there)."""
    ids = {
        p.id
        for p in _saved_products(session)
        if p in session.new or p in session.deleted or session.is_modified(p, include_collections=False)
    }
    if ids:
        session.connection().execute(
            insert(CatalogChange), [{"product_id": i, "changed_at": utcnow()} for i in sorted(ids)]
        )
