"""The demo storefront: search, product pages, cart and checkout, and clearing one's history."""

from flask import Blueprint

bp = Blueprint("storefront", __name__)

from webapp.storefront import build_note, history, routes  # noqa: E402,F401
