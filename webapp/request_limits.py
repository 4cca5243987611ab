"""Request body limits per route: a few KB for the public JSON API and forms, more for the
admin's own forms, the large upload limit only for the catalog import.

One limit for every route let an anonymous client make a worker parse (and hold in memory)
as much as the catalog upload allows on any endpoint. Here every request gets the limit of
its route before anything reads the body: a declared Content-Length above it is refused with
a 413 and a message at once, and a body without one (chunked) is cut off by Werkzeug's
limited stream at the same size. The hook runs first among the app's before-request hooks,
ahead of the CSRF check that parses forms.

Form parsing is bounded as well: at most MAX_FORM_PARTS fields (Werkzeug's max_form_parts)
and MAX_FORM_MEMORY_SIZE bytes of non-file fields held in memory.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

# Routes whose bodies may be larger than the public limit, and the config key of their limit.
UPLOAD_ENDPOINTS = {"admin.catalog_import": "MAX_UPLOAD_BYTES"}
# Admin routes an anonymous client can reach with a body: they keep the public limit.
PUBLIC_ADMIN_ENDPOINTS = {"admin.login", "admin.logout"}
# A body without a Content-Length is read ahead (and so held) only up to limits this small.
PREREAD_MAX = 1024 * 1024


def body_limit(endpoint: str | None) -> int:
    """The most bytes a request to this endpoint may send (the route's setting)."""
    config = current_app.config
    if endpoint in UPLOAD_ENDPOINTS:
        # Only a signed-in admin may send that much: the CSRF check parses a form before the
        # admin guard refuses anyone else, so their bodies keep the public limit.
        if getattr(current_user, "can_change", False):
            return int(config[UPLOAD_ENDPOINTS[endpoint]])
        return int(config["MAX_BODY_BYTES"])
    if endpoint and endpoint.startswith("admin.") and endpoint not in PUBLIC_ADMIN_ENDPOINTS:
        return int(config["MAX_ADMIN_FORM_BYTES"])
    return int(config["MAX_BODY_BYTES"])


def describe(size: int) -> str:
    """A byte count in the unit people read (KB below a megabyte, MB above)."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size / 1024:g} KB"


def too_large_message(limit: int) -> str:
    """The 413's message: what the limit is, so a client can split its request."""
    return f"the request body is larger than this endpoint accepts ({describe(limit)})"


def limit_request_body() -> None:
    """Set this request's body limit from its route; refuse a declared oversize body unread."""
    limit = body_limit(request.endpoint)
    request.max_content_length = limit
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestEntityTooLarge(too_large_message(limit))
    if declared is None and limit <= PREREAD_MAX and request.environ.get("wsgi.input_terminated"):
        _refuse_long_stream(limit)


def _refuse_long_stream(limit: int) -> None:
    """A body without a length (chunked): Werkzeug's limited stream would hand the view the first
    `limit` bytes as if they were all, so read one byte more here and refuse it when it is there.
    The body read stays cached on the request for the view and the form parser."""
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=True)
    finally:
        request.max_content_length = limit
    if len(body) > limit:
        raise RequestEntityTooLarge(too_large_message(limit))


def init_app(app: Flask) -> None:
    """Register the limit as the first before-request hook (call before any extension that reads bodies)."""
    app.before_request_funcs.setdefault(None, []).insert(0, limit_request_body)
