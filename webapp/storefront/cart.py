"""The cart lives in the signed session cookie: a short list of product ids, each with its
quantity and the search it came from. Prices are read from the catalog at display and at
checkout, never from the cookie."""

from __future__ import annotations

from flask import session
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Product
from webapp.services.orders import OrderLine

MAX_CART_LINES = 20
MAX_LINE_QUANTITY = 10  # a demo shop's bound; an event allows up to webapp.services.events.MAX_QUANTITY
REF_KEYS = ("search_id", "recommendation_id", "position")


def feedback_ref(form) -> dict:
    """The search (or recommendation list) id and position a form carried, as event fields (omitted when absent)."""
    ref = {}
    for name in REF_KEYS:
        value = form.get(name, "")
        if value.isascii() and value.isdigit() and int(value) > 0:  # "²" is a digit int() refuses
            ref[name] = int(value)
    if "search_id" in ref:
        ref.pop("recommendation_id", None)  # an event comes from one or the other
        return ref
    return ref if "recommendation_id" in ref else {}


def parse_quantity(raw: str) -> int | None:
    """A quantity from a form: a whole number from 0 to MAX_LINE_QUANTITY, else None."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_LINE_QUANTITY:
        return None
    return int(raw)


def _lines() -> list[dict]:
    return [line for line in session.get("cart", []) if isinstance(line, dict) and "pid" in line]


def add_to_cart(external_id: str, ref: dict) -> int:
    """Add one of a product (one more if it is in the cart, up to MAX_LINE_QUANTITY); returns its quantity.

    A product added again from another search keeps the newer search reference.
    """
    lines = _lines()
    old = next((line for line in lines if line["pid"] == external_id), {})
    quantity = min(MAX_LINE_QUANTITY, _quantity(old) + 1 if old else 1)
    kept = ref or {k: old[k] for k in REF_KEYS if k in old}
    lines = [line for line in lines if line["pid"] != external_id]
    lines.append({"pid": external_id, "qty": quantity, **kept})
    session["cart"] = lines[-MAX_CART_LINES:]
    return quantity


def _quantity(line: dict) -> int:
    raw = line.get("qty", 1)  # lines written before quantities existed have none: one
    return max(1, min(MAX_LINE_QUANTITY, raw)) if isinstance(raw, int) else 1


def set_quantity(external_id: str, quantity: int) -> bool:
    """Change a line's quantity (0 removes it); False when the product is not in the cart."""
    lines = _lines()
    if not any(line["pid"] == external_id for line in lines):
        return False
    session["cart"] = [
        {**line, "qty": quantity} if line["pid"] == external_id else line
        for line in lines
        if line["pid"] != external_id or quantity > 0
    ]
    return True


def cart_items() -> list[OrderLine]:
    """Cart lines joined to their active products, in the order added."""
    lines = _lines()
    if not lines:
        return []
    products = {
        p.external_id: p
        for p in db.session.scalars(
            select(Product).where(Product.external_id.in_([line["pid"] for line in lines]), Product.is_active)
        )
    }
    return [
        OrderLine(
            products[line["pid"]],
            _quantity(line),
            {k: line[k] for k in REF_KEYS if k in line},
        )
        for line in lines
        if line["pid"] in products
    ]


def cart_total(items: list[OrderLine]) -> float:
    """The sum of the priced lines (what a checkout of the cart charges)."""
    return round(sum(item.line_total or 0.0 for item in items), 2)


def remove_bought(bought: set[str]) -> None:
    """Drop the lines a checkout bought; lines it could not buy (no price) stay."""
    session["cart"] = [line for line in _lines() if line["pid"] not in bought]
    if not session["cart"]:
        session.pop("cart")
