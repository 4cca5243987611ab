"""The visitor's own data: clearing their history (webapp.services.visitor_history)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, jsonify, request

from webapp.api import bp
from webapp.security import public_rate_limit
from webapp.services.visitor_history import clear_history
from webapp.visitors import current_visitor_id


@bp.post("/visitor/history/clear")
@public_rate_limit("events")  # a write on the visitor's behalf: it draws on their feedback budget
def clear_visitor_history():
    """Unlink the visitor's searches and events; personalization starts over from the next search."""
    if not same_origin():
        abort(403, "refused: the request came from another site")
    return jsonify({"cleared": clear_history(current_visitor_id())})


def same_origin() -> bool:
    """False when the browser says the request comes from another site (Origin, else Referer).

    The API has no CSRF token (its clients are scripts and beacons), so a page elsewhere could
    post here with the shopper's cookie; browsers name the page's origin on every POST (as
    "null" where they hide it), so a foreign or hidden origin is refused. A client that sends
    neither header is not a browser acting for someone else.
    """
    here = urlsplit(request.host_url)
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if claimed is None:
        return True
    there = urlsplit(claimed)
    return (there.scheme, there.netloc) == (here.scheme, here.netloc)
