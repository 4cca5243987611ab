"""Anonymous visitor identity: a random id in the signed session cookie."""

from __future__ import annotations

import uuid

from flask import Flask, current_app, session
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Visitor

# Set with a new visitor id, dropped at their first feedback: while it is there, a search skips
# reading the visitor's events (a query per search that finds none for a shopper who only browses).
# A cookie without it (one given before the mark existed, or after feedback) reads as before.
NO_FEEDBACK_YET = "nofb"


def current_visitor_id() -> str:
    """The visitor id for this request, creating one in the cookie if needed."""
    if "vid" not in session:
        session["vid"] = str(uuid.uuid4())
        session[NO_FEEDBACK_YET] = 1
        session.permanent = True
    return session["vid"]


def visitor_has_no_feedback() -> bool:
    """True when this visitor's cookie says they have recorded no event yet (NO_FEEDBACK_YET)."""
    return NO_FEEDBACK_YET in session


def feedback_visitor_id() -> str:
    """The visitor id to record events under; from now on their searches read them (NO_FEEDBACK_YET).

    The mark goes before the events are stored: a refused batch only costs later searches one read each.
    """
    visitor = current_visitor_id()
    if NO_FEEDBACK_YET in session:
        session.pop(NO_FEEDBACK_YET)
    return visitor


# Visitor rows are never deleted (clearing history unlinks searches and events, not the visitor),
# so a row once found stays; each worker remembers this many ids and skips the lookup for them.
KNOWN_VISITORS_MAX = 100_000


def ensure_visitor_row(visitor_id: str) -> None:
    """Make sure the visitor exists in the database (flushed, committed by the caller's use case)."""
    known: set[str] = current_app.extensions.setdefault("kairos.known_visitors", set())
    if visitor_id in known:  # a returning visitor: no query on the search path
        return
    # session.get answers from the identity map after the first look in a transaction.
    if db.session.get(Visitor, visitor_id) is not None:
        # Found: committed by an earlier request. One inserted below is remembered only once a later
        # request finds it, so a rolled-back insert is never taken for a stored row.
        if len(known) >= KNOWN_VISITORS_MAX:
            known.clear()  # cheaper than an LRU; the next look-ups refill it
        known.add(visitor_id)
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
