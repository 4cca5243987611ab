"""Each web worker's in-memory Searcher, kept in step with the products table.

Every worker polls for products changed since its last look (at most every
INDEX_SYNC_SECONDS, on the request path), so a product saved anywhere is searchable
in every worker within about a second, with no shared index writer between processes.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from engine.serving.searcher import ProductCard, Searcher
from webapp.extensions import db
from webapp.models import Product

# Re-read a little behind the newest timestamp seen: a transaction may commit a row
# stamped slightly earlier than one already read. Re-applying a row is a no-op.
_LOOKBACK = timedelta(seconds=5)
_INIT_LOCK = threading.Lock()


class _SearcherState:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.watermark: datetime | None = None
        self.last_sync = float("-inf")  # monotonic() counts from boot: 0.0 could skip the first sync
        self.lock = threading.Lock()


def product_card(product: Product) -> ProductCard:
    """The Searcher's view of a product row."""
    return ProductCard(
        id=product.id, external_id=product.external_id, title=product.title, brand=product.brand or "",
        price=product.price, rating=product.rating, rating_count=product.rating_count or 0,
        image_url=product.image_url or "", category=product.category_path or "",
        bullet_points=product.bullet_points or "", description=product.description or "",
    )


def _state() -> _SearcherState:
    app = current_app._get_current_object()
    state = app.extensions.get("kairos.searcher")
    if state is None:
        with _INIT_LOCK:
            state = app.extensions.get("kairos.searcher")
            if state is None:
                state = _SearcherState(Searcher(candidates=app.config["SEARCH_CANDIDATES"]))
                app.extensions["kairos.searcher"] = state
    return state



def sync_searcher(force: bool = False) -> int:
    """Apply catalog changes since the last sync to this worker's Searcher; returns the count."""
    state = _state()
    interval = current_app.config["INDEX_SYNC_SECONDS"]
    if not force and time.monotonic() - state.last_sync < interval:
        return 0
    with state.lock:
        if not force and time.monotonic() - state.last_sync < interval:
            return 0
        stmt = select(Product)
        if state.watermark is not None:
            stmt = stmt.where(Product.updated_at >= state.watermark - _LOOKBACK)
        rows = db.session.scalars(stmt).all()
        changed = state.searcher.apply_changes(
            [product_card(p) for p in rows if p.is_active], [p.id for p in rows if not p.is_active])
        if rows:
            newest = max(p.updated_at for p in rows)
            state.watermark = newest if state.watermark is None else max(state.watermark, newest)
        state.last_sync = time.monotonic()
        return changed


def get_searcher() -> Searcher:
    """This worker's Searcher, brought up to date with the catalog first."""
    sync_searcher()
    return _state().searcher
