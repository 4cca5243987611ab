"""Security (webapp.security, config): headers and a CSP every page satisfies, hostile product
text escaped everywhere, production cookies, and the public rate limits (429 as JSON, failing
open when the limit store is down)."""

from __future__ import annotations

import io
import re
import socket
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from tests.conftest import test_database_url as database_url
from webapp import create_app
from webapp.extensions import db
from webapp.models import Event, Job, ModelVersion
from webapp.security import CONTENT_SECURITY_POLICY
from worker.tasks.catalog import import_file

XSS_TITLE = "<script>alert(1)</script> towel"
XSS_BRAND = '"><img src=x onerror=alert(1)>'
XSS_QUERY = "<script>alert(2)</script>"
DATA_SCRIPT_TYPES = {"application/json"}  # data blocks: never executed, so not subject to script-src


class InlineFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline scripts, styles, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> event handler attribute")
            if name == "style":
                self.problems.append(f"<{tag} style=...> inline style")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script" and not names.get("src") and names.get("type") not in DATA_SCRIPT_TYPES:
            self.problems.append("<script> without src")
        for name in ("href", "src", "action"):
            if (names.get(name) or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")


def inline_problems(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.problems


def test_the_inline_finder_catches_what_the_csp_blocks():
    page = (
        '<div style="color:red" onclick="x()"><script>alert(1)</script><style>p{}</style>'
        '<script type="application/json">{}</script><script src="/static/a.js"></script>'
        '<a href="javascript:alert(1)">x</a></div>'
    )
    assert len(inline_problems(page)) == 5


@pytest.fixture
def hostile(app, client, make_product, login):
    """A catalog, searches, feedback and jobs full of markup; returns ids for the pages' arguments."""
    product = make_product(
        external_id="XSS1", title=XSS_TITLE, brand=XSS_BRAND, description="<style>body{}</style>", price=5.0
    )
    make_product(title="Plain towel")
    for _ in range(5):  # analytics lists queries searched at least five times
        client.get("/search", query_string={"q": XSS_QUERY})
    found = client.get("/api/search", query_string={"q": "towel"}).get_json()
    hit = next(r for r in found["results"] if r["product_id"] == "XSS1")
    click = {"type": "click", "product_id": "XSS1", "search_id": found["search_id"], "position": hit["position"]}
    assert client.post("/api/events", json={"events": [click]}).status_code == 201
    client.post("/cart/add", data={"product_id": "XSS1", "sid": found["search_id"], "pos": hit["position"]})
    version = ModelVersion(name="<b>v</b>", status="failed", retrieval_mode="rrf", metrics={"error": "<i>x</i>"})
    job = Job(kind="build_version", status="failed", error="<script>alert(3)</script>", params={"q": "<u>"})
    db.session.add_all([version, job])
    db.session.commit()
    login("admin")
    return {"product_id": product.id, "external_id": "XSS1", "job_id": job.id, "version_id": version.id}


def _get_urls(app, ids: dict) -> list[str]:
    """Every GET page of the shop and the admin, with real ids where the rule takes one."""
    urls = []
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static" or rule.endpoint.startswith("api."):
                continue
            urls.append(adapter.build(rule.endpoint, {arg: ids.get(arg, 1) for arg in rule.arguments}))
    extra = [
        "/search?q=" + XSS_QUERY,
        "/search?q=towel&brand=" + XSS_BRAND,
        "/search?q=x&page=0",  # the 400 page echoes the query
        "/product/XSS1?sid=1&pos=1",
        "/no-such-page",
        "/admin/analytics/query?q=" + XSS_QUERY,
        "/admin/catalog?q=" + XSS_QUERY,
        "/admin/no-such-page",
    ]
    return urls + extra


def test_every_page_satisfies_the_csp_and_escapes_hostile_text(app, client, hostile, monkeypatch):
    urls = _get_urls(app, hostile)
    assert len(urls) >= 20
    checked = 0
    for url in urls:
        response = client.get(url)
        assert response.status_code < 500, url
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        if not response.mimetype == "text/html":
            continue
        html = response.get_data(as_text=True)
        # An unescaped title would be an inline <script>, an unescaped brand an onerror handler.
        assert inline_problems(html) == [], url
        checked += 1
    assert checked >= 20
    # Pages only a POST or an anonymous visitor sees: the order confirmation, an import report
    # quoting bad lines, and the sign-in form.
    bad_line = b'{"external_id": "<img src=x onerror=alert(4)>", "title": "<script>alert(5)</script>", "price": "x"}'
    monkeypatch.setattr(app.extensions["celery"], "send_task", lambda *a, **k: SimpleNamespace(id="t"))
    queued = client.post("/admin/catalog/import", data={"file": (io.BytesIO(bad_line), "<b>x</b>.jsonl")})
    import_file(int(queued.headers["Location"].rsplit("/", 1)[1]))  # the job's body, run here
    for response in (
        client.post("/buy", data={"product_id": "XSS1"}),
        client.get(queued.headers["Location"]),
        app.test_client().get("/admin/login"),
    ):
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert inline_problems(response.get_data(as_text=True)) == [], response.request.path
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; towel"
    for url in ("/product/XSS1", "/search?q=towel", "/cart", f"/admin/catalog/{hostile['product_id']}"):
        assert escaped in client.get(url).get_data(as_text=True), url
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in client.get(f"/admin/jobs/{hostile['job_id']}").get_data(
        as_text=True
    )


@pytest.mark.parametrize("url", ["/", "/api/health", "/api/search?q=x", "/admin/login", "/static/css/site.css"])
def test_security_headers_on_every_kind_of_response(client, url):
    headers = client.get(url).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    csp = dict(part.split(" ", 1) for part in headers["Content-Security-Policy"].split("; "))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and "https:" in csp["img-src"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in headers  # development serves plain http


def _production_app(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-production-secret-for-tests")
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path), "INSTANCE_DIR": str(tmp_path)})


def test_production_cookies_are_secure_httponly_and_samesite(monkeypatch, tmp_path):
    app = _production_app(monkeypatch, tmp_path)
    assert app.config["REMEMBER_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_HTTPONLY"]
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    with app.app_context():
        db.create_all()
        try:
            response = app.test_client().get("/search?q=towel", base_url="https://shop.example")
            cookie = response.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        finally:
            db.session.remove()  # its open transaction would block DROP on PostgreSQL
            db.drop_all()
            db.engine.dispose()


def test_development_cookies_work_over_plain_http(client):
    cookie = client.get("/search?q=towel").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def _app_with(tmp_path, **config):
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
            "INSTANCE_DIR": str(tmp_path),
            "INDEX_SYNC_SECONDS": 0.0,
            "CELERY": {"broker_url": "memory://", "result_backend": "cache+memory://"},
            **config,
        }
    )


@pytest.fixture
def limited(tmp_path):
    """An app with tiny public limits: 3 searches and 2 event posts per visitor, 6 calls per address."""
    app = _app_with(tmp_path, SEARCH_RATE_LIMIT="3 per minute", EVENTS_RATE_LIMIT="2 per minute")
    app.config["IP_RATE_LIMIT"] = "6 per minute"
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_search_is_limited_per_visitor_with_a_json_429(limited):
    client = limited.test_client()
    assert [client.get("/api/search?q=a").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/search?q=a")
    assert response.status_code == 429 and response.is_json
    assert response.get_json()["error"].startswith("too many search requests")
    assert int(response.headers["Retry-After"]) > 0
    # The storefront page shares the visitor's search budget and answers with a page.
    page = client.get("/search?q=a")
    assert page.status_code == 429 and page.mimetype == "text/html" and "too many search requests" in page.text
    assert limited.test_client().get("/api/search?q=a").status_code == 200  # another visitor is not held up
    assert client.get("/api/health").status_code == 200  # health is never limited


def test_events_are_limited_per_visitor(limited):
    client = limited.test_client()
    statuses = [client.post("/api/events", json={"events": []}).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    assert client.post("/api/events", json={}).get_json()["error"].startswith("too many events requests")


def test_an_address_is_limited_even_when_it_drops_its_cookies(limited):
    # Each fresh client is a new visitor; together they meet the per-address limit.
    statuses = [limited.test_client().get("/api/search?q=a").status_code for _ in range(7)]
    assert statuses == [200] * 6 + [429]


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_search_fails_open_when_the_limit_store_is_unreachable(tmp_path):
    app = _app_with(
        tmp_path, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{_dead_port()}/0", SEARCH_RATE_LIMIT="2 per minute"
    )
    with app.app_context():
        db.create_all()
        try:
            client = app.test_client()
            started = time.perf_counter()
            statuses = [client.get("/api/search?q=a").status_code for _ in range(3)]
            elapsed = time.perf_counter() - started
            # Served, and still limited: the limits fall back to this process's memory.
            assert statuses == [200, 200, 429]
            assert elapsed < 3.0
            assert db.session.scalar(select(func.count(Event.id))) == 0
        finally:
            db.session.remove()  # its open transaction would block DROP on PostgreSQL
            db.drop_all()
            db.engine.dispose()


def test_proxy_hops_make_limits_key_on_the_client_address(tmp_path):
    app = _app_with(tmp_path, PROXY_HOPS=1, SEARCH_RATE_LIMIT="100 per minute")
    app.config["IP_RATE_LIMIT"] = "2 per minute"
    with app.app_context():
        db.create_all()
        try:

            def status(address: str) -> int:
                client = app.test_client()  # a new visitor each time: only the address limit applies
                return client.get("/api/search?q=a", headers={"X-Forwarded-For": address}).status_code

            assert [status("203.0.113.1") for _ in range(3)] == [200, 200, 429]
            assert status("203.0.113.2") == 200
        finally:
            db.session.remove()  # its open transaction would block DROP on PostgreSQL
            db.drop_all()
            db.engine.dispose()


def test_limits_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_SEARCH_RATE_LIMIT", "7 per second")
    monkeypatch.setenv("KAIROS_RATELIMIT_ENABLED", "0")
    app = _app_with(tmp_path)
    assert app.config["SEARCH_RATE_LIMIT"] == "7 per second" and app.config["RATELIMIT_ENABLED"] is False
    assert re.fullmatch(r"\d+ per minute", app.config["IP_RATE_LIMIT"])
