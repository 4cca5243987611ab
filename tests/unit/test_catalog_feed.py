"""The catalog change feed: numbered in the saving transaction, read as "changes after N" by every worker."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from webapp import create_app
from webapp.extensions import db
from webapp.models import CatalogChange, Product, utcnow
from webapp.services.catalog_feed import changes_after, feed_head, prune_feed
from webapp.services.search_index import reconcile_catalog, searcher_state, sync_searcher
from webapp.services.serving_follower import start_follower, stop_follower


def titles(app) -> dict[str, str]:
    with app.app_context():
        return {c.external_id: c.title for c in searcher_state().searcher.cards.values()}


def test_each_save_is_numbered_in_its_own_transaction(app, make_product):
    first = make_product(external_id="T1", title="Bath towel")
    assert feed_head() == 1
    first.price = 5.0
    db.session.add(Product(external_id="T2", title="Beach towel"))
    db.session.commit()  # one transaction, two products: two numbers
    assert [(c.seq, c.product_id) for c in db.session.scalars(select(CatalogChange))] == [(1, 1), (2, 1), (3, 2)]
    first.title = "Hand towel"
    db.session.rollback()  # never committed: never numbered
    first.rating_count = first.rating_count  # no change at all: nothing to number
    db.session.commit()
    assert feed_head() == 3 and changes_after(1) == ([1, 2], 3) and changes_after(3) == ([], 3)


def test_a_late_commit_with_an_old_stamp_reaches_every_worker(app, make_product, tmp_path):
    """Two workers (apps) follow one database; a save stamped a day ago commits after both synced."""
    make_product(external_id="T1", title="Bath towel")
    other = create_app({**app.config, "INSTANCE_DIR": str(tmp_path / "other")})
    apps = [app, other]
    for each in apps:
        each.config["SERVING_FOLLOW_SECONDS"] = 0.02
        start_follower(each)
    try:
        assert all(titles(each) == {"T1": "Bath towel"} for each in apps)
        time.sleep(0.2)  # both followers have synced past the save's stamp many times over
        product = db.session.get(Product, 1)
        product.title, product.updated_at = "Teapot", utcnow() - timedelta(days=1)
        db.session.commit()
        committed = time.monotonic()
        deadline = committed + 5
        while time.monotonic() < deadline and not all(titles(each) == {"T1": "Teapot"} for each in apps):
            time.sleep(0.01)
        assert all(titles(each) == {"T1": "Teapot"} for each in apps)
        assert time.monotonic() - committed < 1.0  # within a second of the commit
    finally:
        for each in apps:
            stop_follower(each)
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_reconciliation_repairs_a_change_written_around_the_feed(app, make_product):
    make_product(external_id="T1", title="Bath towel")
    make_product(external_id="T2", title="Beach towel")
    sync_searcher(force=True)
    db.session.execute(update(Product).where(Product.id == 1).values(title="Teapot"))  # no ORM flush: no number
    db.session.execute(update(Product).where(Product.id == 2).values(is_active=False))
    db.session.commit()
    assert sync_searcher(force=True) == 0 and titles(app) == {"T1": "Bath towel", "T2": "Beach towel"}
    assert reconcile_catalog() == 2
    assert titles(app) == {"T1": "Teapot"}


def test_a_worker_behind_the_pruned_feed_reads_the_whole_catalog(app, make_product):
    make_product(external_id="T1", title="Bath towel")
    sync_searcher(force=True)
    for n in range(2, 5):
        make_product(external_id=f"T{n}", title=f"Towel {n}")
    assert prune_feed(keep=1) == 3  # the numbers this worker has not read yet are gone
    assert db.session.scalar(select(func.count()).select_from(CatalogChange)) == 1
    assert changes_after(1) is None
    sync_searcher(force=True)
    assert sorted(titles(app)) == ["T1", "T2", "T3", "T4"]


def test_concurrent_writers_numbers_commit_in_order(app, make_product):
    """Saves from several threads at once: a reader that only ever asks for numbers after
    the last it read misses none (on PostgreSQL the writers take turns, see product_changes)."""
    writers = 4
    products = [make_product(external_id=f"T{n}", title=f"Towel {n}") for n in range(writers)]
    ids = [p.id for p in products]
    sync_searcher(force=True)

    def write(product_id: int) -> None:
        with app.app_context():
            for round_ in range(10):
                db.session.get(Product, product_id).price = float(round_)
                db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=write, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        sync_searcher(force=True)
        db.session.rollback()
    sync_searcher(force=True)
    assert {searcher_state().searcher.cards[i].price for i in ids} == {9.0}
    assert feed_head() == writers + writers * 10


def test_the_follower_reconciles_on_its_interval(app, make_product):
    make_product(external_id="T1", title="Bath towel")
    app.config.update(SERVING_FOLLOW_SECONDS=0.02, CATALOG_RECONCILE_SECONDS=0.2)
    start_follower(app)
    try:
        db.session.execute(update(Product).where(Product.id == 1).values(title="Teapot"))  # around the feed
        db.session.commit()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and titles(app) != {"T1": "Teapot"}:
            time.sleep(0.02)
        assert titles(app) == {"T1": "Teapot"}
    finally:
        stop_follower(app)
