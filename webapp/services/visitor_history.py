"""Clearing a visitor's history: their searches and events stop being theirs.

The rows stay, unlinked (visitor_id set to NULL): the shop's aggregate statistics (decayed
product and query signals, analytics, the learning loop's training pages) keep counting
them, but nothing ties them to the visitor any more, so the session profile is empty from
the next search on and the visitor gets the non-personal ranking, as a new visitor does.

Kept on purpose:
- The visitor row and any A/B experiment assignment: the assignment keeps the visitor's
  variant sticky (a visitor must not hop between arms mid-experiment). Their searches and
  events before clearing no longer count toward that experiment's per-visitor metrics,
  which count only activity linked to the visitor.
- The cart, which lives in the visitor's own signed cookie, not in the database.

A search answered before clearing but stored after it (the search log is written after the
response, webapp.services.search_log) is stored unlinked: the visitor row keeps the moment.

Feedback on a results page served before clearing is refused afterwards like feedback on
anyone else's search: the search no longer belongs to the visitor.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import delete, update

from webapp.extensions import db
from webapp.models import Event, ProductView, SearchQuery, Visitor, utcnow
from webapp.services.search_log import search_log_for
from webapp.visitors import ensure_visitor_row


def clear_history(visitor_id: str) -> int:
    """Unlink the visitor's events and searches from them, in one transaction; returns how many rows."""
    try:
        mark = update(Visitor).where(Visitor.id == visitor_id).values(history_cleared_at=utcnow())
        if db.session.execute(mark).rowcount == 0 and search_log_for(current_app._get_current_object()):
            # No row yet, but their searches may still be in a journal: the row keeps the moment.
            ensure_visitor_row(visitor_id)
            db.session.execute(mark)
        events = db.session.execute(update(Event).where(Event.visitor_id == visitor_id).values(visitor_id=None))
        searches = db.session.execute(
            # The client network's hash goes too: nothing left ties the searches to this browser's network.
            update(SearchQuery).where(SearchQuery.visitor_id == visitor_id).values(visitor_id=None, client_hash=None)
        )
        db.session.execute(delete(ProductView).where(ProductView.visitor_id == visitor_id))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return events.rowcount + searches.rowcount
