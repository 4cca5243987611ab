"""The demo checkout: an order of priced products, stored with its purchase events in one
transaction. No payment is taken; the order records what was bought, at which prices."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from webapp.errors import InputError
from webapp.models import Order, Product
from webapp.services.events import record_events


@dataclass(frozen=True)
class OrderLine:
    """A product, how many, and the search it came from (event fields), as a cart or "Buy now" holds it."""

    product: Product
    quantity: int
    ref: dict  # the search id and position the product was added from, or {}

    @property
    def buyable(self) -> bool:
        """Products without a price ("Price on request") cannot be bought online."""
        return self.product.price is not None

    @property
    def line_total(self) -> float | None:
        return round(self.product.price * self.quantity, 2) if self.buyable else None


def order_number(order: Order) -> str:
    """The number a shopper quotes: K- and the order id, zero-padded."""
    return f"K-{order.id:06d}"


def place_order(lines: list[OrderLine], visitor_id: str) -> Order:
    """Store an order of these lines and one purchase event per line; InputError when nothing can be bought."""
    buyable = [line for line in lines if line.buyable]
    if not buyable:
        raise InputError("Nothing to order: products with a price on request cannot be bought online.")
    order = Order(
        visitor_id=visitor_id,
        lines=[
            {
                "product_id": line.product.external_id,
                "title": line.product.title,
                "quantity": line.quantity,
                "price": line.product.price,
            }
            for line in buyable
        ],
        total=round(sum(line.line_total or 0.0 for line in buyable), 2),
    )
    events = [
        {"type": "purchase", "product_id": line.product.external_id, "quantity": line.quantity, **line.ref}
        for line in buyable
    ]
    record_events(events, visitor_id, current_app.config["EVENTS_MAX_BATCH"], with_rows=(order,))
    return order
