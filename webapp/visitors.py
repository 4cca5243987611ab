"""Anonymous visitor identity: a random id in the signed session cookie."""

from __future__ import annotations

import uuid

from flask import Flask, session
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Visitor


def current_visitor_id() -> str:
    """The visitor id for this request, creating one in the cookie if needed."""
    if "vid" not in session:
        session["vid"] = str(uuid.uuid4())
        session.permanent = True
    return session["vid"]


def ensure_visitor_row(visitor_id: str) -> None:
    """Make sure the visitor exists in the database (flushed, committed by the caller's use case)."""
    # session.get answers from the identity map after the first look in a transaction.
    if db.session.get(Visitor, visitor_id) is not None:
        return
    try:
        # A savepoint: two first requests of one new visitor may race to insert the same id;
        # the loser keeps its transaction and simply finds the row there.
        with db.session.begin_nested():
            db.session.add(Visitor(id=visitor_id))
    except IntegrityError:
        pass


def init_app(app: Flask) -> None:
    app.jinja_env.globals["visitor_id"] = current_visitor_id
