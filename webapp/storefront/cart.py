"""The cart lives in the signed session cookie: a short list of product ids with their search."""

from __future__ import annotations

from flask import session
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Product

MAX_CART_LINES = 20


def feedback_ref(form) -> dict:
    """The search id and position a form carried, as event fields (omitted when absent)."""
    ref = {}
    for name in ("search_id", "position"):
        value = form.get(name, "")
        if value.isascii() and value.isdigit() and int(value) > 0:  # "²" is a digit int() refuses
            ref[name] = int(value)
    return ref if "search_id" in ref else {}


def add_to_cart(external_id: str, ref: dict) -> None:
    lines = [line for line in session.get("cart", []) if line["pid"] != external_id]
    lines.append({"pid": external_id, **ref})
    session["cart"] = lines[-MAX_CART_LINES:]


def cart_items() -> list[dict]:
    """Cart lines joined to their active products, in the order added."""
    lines = session.get("cart", [])
    if not lines:
        return []
    products = {
        p.external_id: p
        for p in db.session.scalars(
            select(Product).where(Product.external_id.in_([line["pid"] for line in lines]), Product.is_active)
        )
    }
    return [
        {"product": products[line["pid"]], "ref": {k: v for k, v in line.items() if k != "pid"}}
        for line in lines
        if line["pid"] in products
    ]


def clear_cart() -> None:
    session.pop("cart", None)
