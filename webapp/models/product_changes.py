"""Stamps a product's price cuts and restocks on every save, whichever path saved it.

The importer, the admin form and the API all change products; hooking the session's
flush sees them all, with the attribute history telling the old value from the new.
"""

from __future__ import annotations

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from webapp.models.base import utcnow
from webapp.models.catalog import Product


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


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context, _instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, Product):
            stamp_changes(obj)
