"""Storefront pages. Clicks are logged by the product page itself (a redirect-free link
carrying search id and position), so they are recorded even without JavaScript.

Every route that writes feedback (a click-carrying product link, add to cart, buy) draws on
the visitor's events budget shared with /api/events, so the pages are no way around it."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from engine.serving.searcher import SearchRequest
from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import Event, Product
from webapp.security import public_rate_limit
from webapp.services.events import record_events
from webapp.services.feedback_trust import record_product_view
from webapp.services.orders import OrderLine, order_number, place_order
from webapp.services.search import search_and_log
from webapp.services.search_index import get_searcher
from webapp.services.search_params import parse_search_args, parse_spell_arg
from webapp.services.suggestions import popular_queries
from webapp.storefront import bp
from webapp.storefront.cart import (
    MAX_LINE_QUANTITY,
    add_to_cart,
    cart_items,
    cart_total,
    feedback_ref,
    parse_quantity,
    remove_bought,
    set_quantity,
)
from webapp.storefront.recommend import HEADINGS, page_lists
from webapp.visitors import current_visitor_id, feedback_visitor_id, visitor_has_no_feedback


@bp.before_request
def _give_visitor_id() -> None:
    """A new shopper gets their visitor id with the first page, before its script asks for suggestions."""
    current_visitor_id()


@bp.get("/")
def home():
    """Search box and the most trusted products."""
    return (
        redirect(url_for("storefront.search"))
        if request.args.get("q")
        else render_template(
            "storefront/home.html", popular=popular_queries(), recommendations=page_lists("home", []), headings=HEADINGS
        )
    )


@bp.get("/search")
@public_rate_limit("search")
def search():
    """A results page: grid, facets, pagination; logs the query and its impressions."""
    try:
        search_request = parse_search_args(request.args, current_app.config["SEARCH_PAGE_SIZE"])
        correct = parse_spell_arg(request.args)
    except InputError as exc:
        return render_template(
            "storefront/search.html",
            error=str(exc),
            q=request.args.get("q", "")[:200],
            response=None,
            search_request=None,
        ), 400
    query, response = search_and_log(
        search_request, current_visitor_id(), no_feedback=visitor_has_no_feedback(), correct_spelling=correct
    )
    if response.redirect:  # a query rule sends this query elsewhere (a landing page, a brand's shop)
        return redirect(response.redirect)
    suggestions = popular_queries() if not response.hits else []
    if not response.hits and not suggestions:
        suggestions = list(get_searcher().search(SearchRequest(page_size=1)).brand_counts)[:8]
    pages = max(1, -(-response.candidates // search_request.page_size))  # matching, then related results
    return render_template(
        "storefront/search.html",
        search_request=search_request,
        response=response,
        search_id=query.id,
        q=search_request.text,
        corrected=query.corrected_text,
        spell=correct,
        suggestions=suggestions,
        pages=min(pages, 50),
        error=None,
    )


def _click_ref() -> tuple[int | None, int | None]:
    """The search id and position a result link carries; both set means a click to record."""
    return request.args.get("sid", type=int), request.args.get("pos", type=int)


def _carries_click() -> bool:
    sid, pos = _click_ref()
    return bool((sid or request.args.get("rid", type=int)) and pos)


@bp.get("/product/<external_id>")
@public_rate_limit("events", only_when=_carries_click)  # plain browsing is never limited
def product(external_id: str):
    """Product page; records that the visitor was shown it, and arriving from a result (sid and pos) the click."""
    item = db.session.scalar(select(Product).where(Product.external_id == external_id, Product.is_active))
    if item is None:
        return render_template("errors/error.html", status=404, message="That product is not available."), 404
    record_product_view(current_visitor_id(), item.id)  # what lets a cart or purchase without a search count
    sid, pos = _click_ref()
    rid = None if sid else request.args.get("rid", type=int)  # from a recommendation list instead
    if sid and pos and not _clicked_before(sid, item.id):  # a reload of the page is not another click
        _record_quietly([{"type": "click", "product_id": external_id, "search_id": sid, "position": pos}])
    elif rid and pos and not _clicked_before(rid, item.id, Event.recommendation_id):
        _record_quietly([{"type": "click", "product_id": external_id, "recommendation_id": rid, "position": pos}])
    return render_template(
        "storefront/product.html",
        product=item,
        sid=sid,
        rid=rid,
        pos=pos,
        recommendations=page_lists("product", [external_id]),
        headings=HEADINGS,
    )


def _clicked_before(list_id: int, product_id: int, column=Event.search_id) -> bool:
    """Whether this result's click is stored already (a search or recommendation list belongs to one visitor)."""
    if not 0 < list_id < 2**31:
        return False  # no such list: record_events refuses it with the reason
    clicked = select(Event.id).where(column == list_id, Event.product_id == product_id, Event.type == "click")
    return db.session.scalar(clicked.limit(1)) is not None


def _record_quietly(events: list[dict]) -> bool:
    """A stale or tampered link must not break the page; the event is simply not stored."""
    try:
        record_events(events, feedback_visitor_id(), current_app.config["EVENTS_MAX_BATCH"])
        return True
    except InputError as exc:
        current_app.logger.info("feedback not recorded: %s %s", exc, exc.details)
        return False


@bp.post("/cart/add")
@public_rate_limit("events")
def cart_add():
    """Add to cart and record the add_to_cart event tied to the search it came from."""
    external_id = request.form.get("product_id", "")
    ref = feedback_ref(request.form)
    item = db.session.scalar(select(Product).where(Product.external_id == external_id, Product.is_active))
    if item is not None and item.price is None:
        flash("That product's price is on request: it cannot be ordered online.")
    elif _record_quietly([{"type": "add_to_cart", "product_id": external_id, **ref}]):
        add_to_cart(external_id, ref)
        flash("Added to your cart.")
    else:
        flash("That product could not be added.")
    return redirect(url_for("storefront.cart"))


@bp.get("/cart")
def cart():
    """The visitor's cart, kept in the signed session cookie: prices, quantities, line totals, a total."""
    items = cart_items()
    return render_template(
        "storefront/cart.html",
        items=items,
        total=cart_total(items),
        max_quantity=MAX_LINE_QUANTITY,
        recommendations=page_lists("cart", [item.product.external_id for item in items]),
        headings=HEADINGS,
    )


@bp.post("/cart/update")
def cart_update():
    """Change a line's quantity (0 removes it); no feedback event: the add was recorded already."""
    quantity = parse_quantity(request.form.get("quantity", ""))
    if quantity is None:
        flash(f"Quantity must be a whole number from 0 to {MAX_LINE_QUANTITY}.")
        items = cart_items()
        return render_template(
            "storefront/cart.html", items=items, total=cart_total(items), max_quantity=MAX_LINE_QUANTITY
        ), 400
    if set_quantity(request.form.get("product_id", ""), quantity):
        flash("Removed from your cart." if quantity == 0 else "Quantity updated.")
    return redirect(url_for("storefront.cart"))


@bp.post("/cart/remove")
def cart_remove():
    """Remove a line from the cart."""
    if set_quantity(request.form.get("product_id", ""), 0):
        flash("Removed from your cart.")
    return redirect(url_for("storefront.cart"))


@bp.get("/checkout")
def checkout():
    """Confirm the order: the cart's priced lines and total, before anything is bought."""
    items = cart_items()
    if not items:
        flash("Your cart is empty.")
        return redirect(url_for("storefront.cart"))
    return render_template("storefront/checkout.html", items=items, total=cart_total(items))


@bp.post("/buy")
@public_rate_limit("events")
def buy():
    """Place a demo order (no payment): one product now, or the cart's priced lines; records purchase events."""
    external_id = request.form.get("product_id")
    if external_id:
        item = db.session.scalar(select(Product).where(Product.external_id == external_id, Product.is_active))
        lines = [OrderLine(item, 1, feedback_ref(request.form))] if item is not None else []
    else:
        lines = cart_items()
    if not lines:
        flash("Your cart is empty." if not external_id else "That product could not be ordered.")
        return redirect(url_for("storefront.cart"))
    try:
        order = place_order(lines, feedback_visitor_id())
    except InputError as exc:
        current_app.logger.info("order not placed: %s %s", exc, exc.details)
        flash(str(exc) if not exc.details else "Your order could not be placed.")
        return redirect(url_for("storefront.cart"))
    if not external_id:
        remove_bought({line["product_id"] for line in order.lines})
    session.modified = True
    return render_template("storefront/thanks.html", order=order, number=order_number(order))
