"""Visitor identity: a new visitor gets a row once; a returning one is not looked up on every search."""

from __future__ import annotations

from sqlalchemy import event, func, select

from webapp.extensions import db
from webapp.models import Visitor


def visitor_statements(app, client, path: str) -> list[str]:
    """The SQL statements naming the visitors table that one request ran."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if "visitors" in statement:
            seen.append(statement.split()[0].upper())

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_visitor_row_is_made_once_and_then_found_in_memory(app, client, make_product):
    make_product(external_id="TOWEL", title="Cotton towel")
    first = visitor_statements(app, client, "/api/search?q=towel")
    assert "INSERT" in first  # a new visitor: looked up, then inserted
    second = visitor_statements(app, client, "/api/search?q=towel")
    assert second == ["SELECT"]  # found committed: remembered from now on
    assert visitor_statements(app, client, "/api/search?q=towel") == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Visitor)) == 1
