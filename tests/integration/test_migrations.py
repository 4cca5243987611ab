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
