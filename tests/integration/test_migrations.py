"""The migrations are the schema: upgrading an empty database to head must give exactly the
models' tables (Alembic's compare_metadata finds nothing), and downgrading to base must undo it.

Runs on SQLite always and, when KAIROS_TEST_DATABASE_URL is set, on PostgreSQL too.
"""

from __future__ import annotations

import logging
import os

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from webapp import create_app
from webapp.extensions import db

PG_URL = os.environ.get("KAIROS_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _keep_logging():
    """migrations/env.py calls logging.fileConfig, which disables every existing logger and
    replaces the root handlers; undo that so later tests still see their logs."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    enabled = [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger) and not lg.disabled
    ]
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for lg in enabled:
        lg.disabled = False


def _drop_everything() -> None:
    """Empty the database, whatever another test or an earlier run left behind."""
    existing = MetaData()
    existing.reflect(bind=db.engine)
    existing.drop_all(bind=db.engine)


def _schema_diff() -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, db.metadata)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def migration_app(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    elif PG_URL and PG_URL.startswith("postgresql"):
        url = PG_URL
    else:
        pytest.skip("KAIROS_TEST_DATABASE_URL is not a PostgreSQL URL (scripts/test.sh sets it for its second pass)")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "INSTANCE_DIR": str(tmp_path)})
    with app.app_context():
        _drop_everything()
        yield app
        db.session.remove()
        _drop_everything()
        db.engine.dispose()


def test_upgrade_to_head_matches_models(migration_app):
    assert inspect(db.engine).get_table_names() == []
    flask_migrate.upgrade()
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert tables - set(db.metadata.tables) == {"alembic_version"}
    assert _schema_diff() == []


def test_downgrade_to_base_removes_every_table(migration_app):
    flask_migrate.upgrade()
    flask_migrate.downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    # And the chain is repeatable: up again from base still matches the models.
    flask_migrate.upgrade()
    assert _schema_diff() == []


def test_upgrade_keeps_existing_searches_and_feedback(migration_app):
    """Upgrading a database that already holds searches, impressions and events keeps every row
    (SQLite's batch mode rebuilds search_queries, which those rows reference)."""
    from sqlalchemy import text

    flask_migrate.upgrade(revision="74d504da1d93")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO visitors (id, created_at) VALUES ('v1', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO products (id, external_id, title, brand, description, bullet_points, category_path,"
                " color, rating_count, image_url, is_active, created_at, updated_at) VALUES"
                " (1, 'P1', 'Towel', '', '', '', '', '', 0, '', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO search_queries (id, visitor_id, text, normalized, filters, sort, page, result_count,"
                " latency_ms, source, created_at) VALUES (1, 'v1', 'towel', 'towel', '{}', 'relevance', 1, 1, 1.0,"
                " 'api', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(text("INSERT INTO impressions (search_id, product_id, position, ranker) VALUES (1, 1, 1, 'x')"))
        conn.execute(
            text(
                "INSERT INTO events (type, visitor_id, product_id, search_id, position, quantity, created_at)"
                " VALUES ('click', 'v1', 1, 1, 1, 1, CURRENT_TIMESTAMP)"
            )
        )
    flask_migrate.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM search_queries WHERE fuzzy = false")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM impressions")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1
    assert _schema_diff() == []
