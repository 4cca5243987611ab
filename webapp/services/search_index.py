"""Each web worker's in-memory Searcher, kept in step with the products table.

Every worker reads the catalog change feed (webapp.services.catalog_feed: the products
saved after the last number it applied) at most every INDEX_SYNC_SECONDS, and reconciles
with the whole catalog every CATALOG_RECONCILE_SECONDS, so a product saved anywhere is
searchable in every worker within about a second, with no shared index writer between
processes. A gunicorn worker polls
from its follower thread (webapp.services.serving_follower) and its requests only read;
a process without one (the CLI, `flask run`, the tests) polls on the request path.
"""

from __future__ import annotations

import threading
import time

from flask import current_app
from sqlalchemy import select

from engine.serving.searcher import ProductCard, Searcher
from webapp.extensions import db
from webapp.models import Product, epoch
from webapp.services.catalog_feed import changes_after, feed_head, products_by_id, prune_feed

_INIT_LOCK = threading.Lock()
FOLLOWER = "kairos.serving_follower"  # app.extensions key of the worker's follower, while one runs


class _SearcherState:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.seq: int | None = None  # the last catalog change feed number applied (None: none yet)
        self.last_sync = float("-inf")  # monotonic() counts from boot: 0.0 could skip the first sync
        self.last_reconcile = time.monotonic()  # the first sync reads the whole catalog anyway
        self.lock = threading.Lock()
        # Model version serving state (see webapp.services.serving_version).
        self._version_id: int | None = None
        self.version_since = time.time()  # when this worker began serving version_id (epoch seconds)
        self.last_version_check = float("-inf")
        self.loading_version: int | None = None
        self.failed_versions: dict[int, str] = {}

    @property
    def version_id(self) -> int | None:
        """The model version this worker serves (None: lexical search)."""
        return self._version_id

    @version_id.setter
    def version_id(self, value: int | None) -> None:
        if value != self._version_id:
            self._version_id, self.version_since = value, time.time()


def follower_runs() -> bool:
    """Whether a follower thread keeps this worker's serving state (then requests never sync)."""
    return FOLLOWER in current_app.extensions


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
                searcher.match_floor = app.config.get("SEARCH_MATCH_FLOOR")
                state = _SearcherState(searcher)
                app.extensions["kairos.searcher"] = state
    return state


def sync_searcher(force: bool = False) -> int:
    """Apply the catalog changes numbered since the last sync to this worker's Searcher; returns the count."""
    state = searcher_state()
    interval = current_app.config["INDEX_SYNC_SECONDS"]
    if not force and time.monotonic() - state.last_sync < interval:
        return 0
    with state.lock:
        if not force and time.monotonic() - state.last_sync < interval:
            return 0
        changes = changes_after(state.seq) if state.seq is not None else None
        if changes is None:  # the first sync, or this worker fell behind the feed's pruning
            changed = _apply_catalog(state)
        else:
            ids, state.seq = changes
            rows = products_by_id(ids)
            active = {p.id for p in rows if p.is_active}
            cards = [product_card(p) for p in rows if p.is_active]
            changed = state.searcher.apply_changes(cards, [i for i in ids if i not in active])
        state.last_sync = time.monotonic()
        return changed


def reconcile_catalog() -> int:
    """Compare the whole catalog with this worker's Searcher and repair any difference; returns the count.

    The follower runs it every CATALOG_RECONCILE_SECONDS: a change written around the feed
    (a hand-run SQL update) is served within that bound. Old feed numbers are pruned too.
    """
    state = searcher_state()
    with state.lock:
        changed = _apply_catalog(state)
        state.last_reconcile = time.monotonic()
    prune_feed()
    return changed


def _apply_catalog(state: _SearcherState) -> int:
    """Read every product: the Searcher ends holding exactly the active ones (caller holds state.lock)."""
    head = feed_head()  # first: a change numbered after it is read again by the next sync
    # populate_existing: rows this session loaded before are read again, never served from its identity map.
    rows = db.session.scalars(select(Product).execution_options(populate_existing=True)).all()
    active = {p.id for p in rows if p.is_active}
    cards = [product_card(p) for p in rows if p.is_active]
    gone = [i for i in list(state.searcher.cards) if i not in active]
    changed = state.searcher.apply_changes(cards, gone)
    state.seq = head if state.seq is None else max(state.seq, head)
    return changed


def reconcile_if_due() -> int:
    """reconcile_catalog() once CATALOG_RECONCILE_SECONDS have passed since the last one (0 turns it off)."""
    interval = current_app.config["CATALOG_RECONCILE_SECONDS"]
    state = searcher_state()
    if interval <= 0 or time.monotonic() - state.last_reconcile < interval:
        return 0
    return reconcile_catalog()


def get_searcher() -> Searcher:
    """This worker's Searcher, brought up to date with the catalog and the active model version.

    With a follower running, its current snapshot's Searcher (no query, no lock); without
    one, the follower's steps run here, each throttled by its own interval.
    """
    from webapp.services.serving_follower import current_snapshot, sync_serving_state

    snapshot = current_snapshot()
    if snapshot is not None:
        return snapshot.searcher
    sync_serving_state()
    return searcher_state().searcher
