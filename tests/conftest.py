"""Shared fixtures: an app per test on a fresh database (SQLite, or PostgreSQL when
KAIROS_TEST_DATABASE_URL is set, as .ci/run does for its second pass)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from webapp import create_app
from webapp.extensions import db
from webapp.models import Product, utcnow
from webapp.services.impression_flush import stop_impression_writer


def test_database_url(tmp_path) -> str:
    return os.environ.get("KAIROS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"


def drop_everything() -> None:
    """Drop every table, even with rows in the experiments <-> variants reference cycle."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        else:
            # A test that built a second app may leave a connection idle inside a transaction,
            # holding locks DROP TABLE would wait on forever: end those, and never wait long.
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
            )
            conn.exec_driver_sql("SET lock_timeout = '60s'")
            conn.commit()
        db.metadata.drop_all(conn)
        conn.commit()


@pytest.fixture
def app(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": test_database_url(tmp_path),
            "INSTANCE_DIR": str(tmp_path),
            "WTF_CSRF_ENABLED": False,
            "INDEX_SYNC_SECONDS": 0.0,
            # Signal counts written and mirrored at once (the buffering has its own tests).
            "SIGNAL_IMPRESSION_FLUSH_SECONDS": 0.0,
            "SIGNAL_IMPRESSION_SYNC_SECONDS": 0.0,
            # Unit tests never reach a broker: views that enqueue are tested with send_task patched.
            "CELERY": {"broker_url": "memory://", "result_backend": "cache+memory://"},
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        yield app
        stop_impression_writer(app)  # a test may have started it; it must not outlive the tables
        db.session.remove()
        drop_everything()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_product(app):
    """Factory for products; commits so the searcher's sync sees them."""
    counter = iter(range(1, 10_000))

    def make(**fields) -> Product:
        n = next(counter)
        values = {
            "external_id": f"P{n:05d}",
            "title": f"Product {n}",
            "brand": "Acme",
            "rating": 4.0,
            "rating_count": 10,
            "price": 10.0,
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }
        values.update(fields)
        values.setdefault("listed_at", values["created_at"])  # a product added now is listed now
        product = Product(**values)
        db.session.add(product)
        db.session.commit()
        return product

    return make


@pytest.fixture
def show_product(app):
    """Record that a visitor was shown a product's page (what an event without search_id needs)."""
    from webapp.services.feedback_trust import record_product_view

    def show(visitor_id: str, external_id: str) -> None:
        product = db.session.scalar(select(Product).where(Product.external_id == external_id))
        record_product_view(visitor_id, product.id)

    return show


@pytest.fixture
def login(client, monkeypatch):
    """Sign the test client in as a new account (role "admin" or "analyst"); returns the AdminUser.

    Test accounts hash with a cheap pbkdf2 (scrypt costs a quarter second per hash and check)."""
    from webapp.services import admin_users
    from webapp.services.admin_users import create_admin

    monkeypatch.setattr(admin_users, "HASH_METHOD", "pbkdf2:sha256:1000")

    def log_in(role: str = "admin", email: str | None = None, password: str = "correct horse battery staple"):
        user = create_admin(email or f"{role}@example.com", password, role)
        response = client.post("/admin/login", data={"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return log_in
