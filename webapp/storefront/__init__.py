"""The demo storefront: search, product pages, cart and checkout."""

from flask import Blueprint

bp = Blueprint("storefront", __name__)

from webapp.storefront import routes  # noqa: E402,F401
