"""Response security headers and the public rate limits (search and feedback events).

Every response carries a Content-Security-Policy that the templates satisfy without
'unsafe-inline': scripts and styles come only from /static, product images from any https
host. The public endpoints are limited per visitor cookie and, more generously, per
client address (a shopper who drops cookies still meets the address limit).

Only the views that record something under the visitor (searches, events) give a new visitor
an id. A suggestion request never does: typing fires one while the first search page is still
on its way, and a second new id in that response could land after the page's and replace the
shopper's cookie, so their clicks on that search would name someone else's and be refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, Response, current_app, session
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.extensions import limiter
from webapp.visitors import current_visitor_id

View = TypeVar("View", bound=Callable)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' https: data:",  # product images are remote https URLs
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"
# Which config setting holds the per-visitor limit of each kind of public endpoint.
LIMIT_SETTINGS = {"search": "SEARCH_RATE_LIMIT", "events": "EVENTS_RATE_LIMIT", "suggest": "SUGGEST_RATE_LIMIT"}
# The kinds whose views record under the visitor id, and so give one to a request without it.
GIVES_VISITOR_ID = {"search", "events"}
# Per-address budgets: shared by search and events; suggestions (a request per keystroke) have their own.
ADDRESS_LIMITS = {"suggest": ("public-ip-suggest", "SUGGEST_IP_RATE_LIMIT")}
_SHARED_ADDRESS_LIMIT = ("public-ip", "IP_RATE_LIMIT")


def _set_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config.get("ENV_NAME") == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def visitor_key() -> str:
    """The rate-limit key of a shopper: the visitor cookie's id (given now if the request has none)."""
    # A cookie-less request gets its id here, as the view would, so its first call counts too.
    return f"vid:{current_visitor_id()}"


def known_visitor_key() -> str:
    """The rate-limit key of a shopper who has a visitor id already (never gives one)."""
    return f"vid:{session.get('vid', '')}"


def _429_message(kind: str) -> Callable[[], str]:
    return lambda: f"too many {kind} requests; slow down and retry in a minute"


def public_rate_limit(kind: str, only_when: Callable[[], bool] | None = None) -> Callable[[View], View]:
    """Limit a public view per visitor (SEARCH_/EVENTS_RATE_LIMIT) and per address (IP_RATE_LIMIT).

    With `only_when`, a request counts (and can be refused) only when it says True: a product
    page is limited as feedback only when its link carries a click to record.
    """
    setting = LIMIT_SETTINGS[kind]
    address_scope, address_setting = ADDRESS_LIMITS.get(kind, _SHARED_ADDRESS_LIMIT)
    exempt_when = None if only_when is None else lambda: not only_when()
    gives_id = kind in GIVES_VISITOR_ID

    def visitor_exempt() -> bool:
        # Without a visitor id yet, a view that gives none meets only the address limit (module docstring).
        return (not gives_id and "vid" not in session) or (exempt_when is not None and exempt_when())

    def decorate(view: View) -> View:
        # Shared by scope: the storefront page and the API draw on one search budget per visitor.
        per_visitor = limiter.shared_limit(
            lambda: current_app.config[setting],
            scope=f"public-{kind}",
            key_func=visitor_key if gives_id else known_visitor_key,
            error_message=_429_message(kind),
            exempt_when=visitor_exempt,
        )
        # One budget per address shared by search and events, so they add up (ADDRESS_LIMITS).
        per_address = limiter.shared_limit(
            lambda: current_app.config[address_setting],
            scope=address_scope,
            error_message=_429_message(kind),
            exempt_when=exempt_when,
        )
        return per_address(per_visitor(view))

    return decorate


def init_app(app: Flask) -> None:
    """Trust PROXY_HOPS proxies for the client address, and add the headers to every response."""
    hops = int(app.config.get("PROXY_HOPS", 0))
    if hops:
        # Behind a load balancer every request comes from its address: rate limits need the client's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.after_request(_set_headers)
