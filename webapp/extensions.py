"""Extensions are created unbound here and bound to an app in the factory."""

import math
from collections.abc import Iterator, Sequence

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase

# A naming convention keeps constraint names stable across SQLite and PostgreSQL migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
# No default limits: only routes that say so are limited (the admin login); storage from RATELIMIT_STORAGE_URI.
limiter = Limiter(key_func=get_remote_address)


def tune_sqlite(engine: Engine) -> None:
    """On SQLite, use WAL with relaxed fsync: readers never block the writer and each commit
    (a search log is one per request) costs microseconds instead of an fsync; wait on locks."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        try:
            cursor.execute("SELECT exp(0)")  # signal decay runs in SQL; some SQLite builds lack math functions
        except Exception:
            dbapi_connection.create_function("exp", 1, math.exp, deterministic=True)
        cursor.close()


IN_LIST_MAX = 900  # values per IN (...) list: stays under SQLite's bound-parameter limit


def in_chunks(values: Sequence) -> Iterator[Sequence]:
    """`values` in slices short enough for one IN (...) list each."""
    for start in range(0, len(values), IN_LIST_MAX):
        yield values[start : start + IN_LIST_MAX]
