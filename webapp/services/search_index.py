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
from webapp.models import Product, epoch, utcnow
from webapp.services.context_ranking import follow_context_ranker
from webapp.services.signal_sync import sync_signals

# Look a little behind the previous sync: a transaction may commit a row stamped a few
# seconds before it became visible. Rows already applied at the same stamp are skipped.
_LOOKBACK = timedelta(seconds=5)
_INIT_LOCK = threading.Lock()


class _SearcherState:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.watermark: datetime | None = None  # wall-clock start of the previous sync
        self.stamps: dict[int, datetime] = {}  # product id -> updated_at already applied
        self.last_sync = float("-inf")  # monotonic() counts from boot: 0.0 could skip the first sync
        self.lock = threading.Lock()
        # Model version serving state (see webapp.services.serving_version).
        self.version_id: int | None = None
        self.last_version_check = float("-inf")
        self.loading_version: int | None = None
        self.failed_versions: dict[int, str] = {}


def product_card(product: Product) -> ProductCard:
    """The Searcher's view of a product row."""
    return ProductCard(
        id=product.id,
        external_id=product.external_id,
        title=product.title,
        brand=product.brand or "",
        price=product.price,
        rating=product.rating,
        rating_count=product.rating_count or 0,
        image_url=product.image_url or "",
        category=product.category_path or "",
        bullet_points=product.bullet_points or "",
        description=product.description or "",
        created_at=epoch(product.listed_at) if product.listed_at else None,  # the catalog's own date
        price_dropped_at=epoch(product.price_dropped_at) if product.price_dropped_at else None,
        price_drop=product.price_drop or 0.0,
        restocked_at=epoch(product.restocked_at) if product.restocked_at else None,
    )


def searcher_state() -> _SearcherState:
    app = current_app._get_current_object()
    state = app.extensions.get("kairos.searcher")
    if state is None:
        with _INIT_LOCK:
            state = app.extensions.get("kairos.searcher")
            if state is None:
                searcher = Searcher(
                    candidates=app.config["SEARCH_CANDIDATES"], result_cache=app.config["SEARCH_RESULT_CACHE"]
                )
                state = _SearcherState(searcher)
                app.extensions["kairos.searcher"] = state
    return state


def sync_searcher(force: bool = False) -> int:
    """Apply catalog changes since the last sync to this worker's Searcher; returns the count."""
    state = searcher_state()
    interval = current_app.config["INDEX_SYNC_SECONDS"]
    if not force and time.monotonic() - state.last_sync < interval:
        return 0
    with state.lock:
        if not force and time.monotonic() - state.last_sync < interval:
            return 0
        started = utcnow()
        if state.watermark is None:
            rows = db.session.scalars(select(Product)).all()
        else:
            rows = _changed_rows(state, state.watermark - _LOOKBACK)
        changed = state.searcher.apply_changes(
            [product_card(p) for p in rows if p.is_active], [p.id for p in rows if not p.is_active]
        )
        state.stamps.update((p.id, p.updated_at) for p in rows)
        state.watermark = started
        state.last_sync = time.monotonic()
        return changed


def _changed_rows(state: _SearcherState, since: datetime) -> list[Product]:
    """Products stamped since `since` that this worker has not applied at that stamp.

    Only ids and stamps are read for the window; full rows only for what really changed,
    so a quiet catalog costs one small indexed query per sync.
    """
    recent = db.session.execute(select(Product.id, Product.updated_at).where(Product.updated_at >= since)).all()
    fresh = [row.id for row in recent if state.stamps.get(row.id) != row.updated_at]
    rows: list[Product] = []
    for start in range(0, len(fresh), 500):
        rows.extend(db.session.scalars(select(Product).where(Product.id.in_(fresh[start : start + 500]))))
    return rows


def get_searcher() -> Searcher:
    """This worker's Searcher, brought up to date with the catalog and the active model version."""
    from webapp.services.serving_version import follow_active_version

    sync_searcher()
    follow_active_version()
    searcher = searcher_state().searcher
    sync_signals(searcher.board)
    follow_context_ranker(searcher)
    return searcher
