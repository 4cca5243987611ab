"""Per-route body limits (webapp.request_limits): small public bodies are refused with a 413 and
a message before they are parsed; only the catalog upload takes the large limit."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Event
from webapp.request_limits import body_limit


class CountingStream(io.BytesIO):
    """A request body that counts how much of it the app read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def oversized_events(size: int) -> bytes:
    """The probe's body: a JSON list of empty objects, size bytes long."""
    count = size // 3
    return b'{"events": [' + b",".join([b"{}"] * count) + b"]}"


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/events", "application/json", oversized_events(200_000)),
        ("/admin/login", "application/x-www-form-urlencoded", b"email=a&password=" + b"x" * 200_000),
        ("/cart/add", "application/x-www-form-urlencoded", b"product_id=" + b"x" * 200_000),
        ("/api/visitor/history/clear", "application/json", b"[" + b"0," * 100_000 + b"0]"),
        ("/buy", "application/x-www-form-urlencoded", b"a=1&" * 50_000),
    ],
)
def test_an_oversized_public_body_is_refused_unread(client, path, content_type, body):
    stream = CountingStream(body)
    response = client.post(
        path, input_stream=stream, content_type=content_type, headers={"Content-Length": str(len(body))}
    )
    assert response.status_code == 413
    assert "larger than this endpoint accepts (32 KB)" in response.get_data(as_text=True)
    assert stream.consumed == 0  # refused before the body was read, let alone parsed


def test_the_api_answers_413_as_json(client):
    response = client.post("/api/events", data=oversized_events(100_000), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json() == {"error": "the request body is larger than this endpoint accepts (32 KB)"}
    assert db.session.scalar(select(Event.id)) is None


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(app, client):
    body = oversized_events(100_000)
    stream = CountingStream(body)
    environ = {"wsgi.input_terminated": True}  # as gunicorn says for a chunked body
    response = client.post(
        "/api/events", input_stream=stream, content_type="application/json", environ_overrides=environ
    )
    assert response.status_code == 413
    assert stream.consumed <= app.config["MAX_BODY_BYTES"] + 64 * 1024  # read in chunks, never the whole body


def test_a_normal_event_batch_fits(client, make_product):
    make_product(external_id="P1", title="Towel")
    largest = {
        "type": "add_to_cart",
        "product_id": "P" * 64,
        "search_id": 2**31 - 1,
        "position": 10_000,
        "quantity": 100,
        "ts": "2026-12-04T19:00:00.000000+00:00".ljust(40, "0")[:40],
    }
    assert len(json.dumps({"events": [largest] * 100})) < 32 * 1024  # the largest valid batch fits
    batch = {"events": [{"type": "click", "product_id": "P1", "quantity": 1}] * 100}
    assert client.post("/api/events", json=batch).status_code != 413


def test_multipart_forms_have_a_field_count_limit(client):
    # An urlencoded form is bounded by its byte limit; a multipart one also by its part count.
    fields = {f"f{i}": "1" for i in range(120)}
    response = client.post("/cart/add", data=fields, content_type="multipart/form-data")
    assert response.request.content_length < 32 * 1024
    assert response.status_code == 413


def test_the_limits_are_per_route_and_configurable(app):
    with app.test_request_context():
        assert body_limit("api.events") == 32 * 1024
        assert body_limit("admin.login") == 32 * 1024
        assert body_limit("admin.catalog_edit") == app.config["MAX_ADMIN_FORM_BYTES"] == 512 * 1024
        assert body_limit("admin.catalog_import") == 32 * 1024  # anonymous: the public limit
        assert body_limit(None) == 32 * 1024
        app.config["MAX_BODY_BYTES"] = 4096
        assert body_limit("storefront.cart_add") == 4096


def test_the_catalog_upload_keeps_the_large_limit(app, client, login, monkeypatch):
    login("admin")
    sent = []
    monkeypatch.setattr(
        app.extensions["celery"], "send_task", lambda name, args=None, **_: sent.append(name) or SimpleNamespace(id="t")
    )
    rows = "\n".join(json.dumps({"id": f"U{i}", "title": "x" * 300}) for i in range(200)).encode()
    assert len(rows) > 50 * 1024
    response = client.post(
        "/admin/catalog/import", data={"file": (io.BytesIO(rows), "c.jsonl")}, content_type="multipart/form-data"
    )
    assert response.status_code == 302 and sent == ["catalog.import_file"]


def test_a_chunked_body_within_the_limit_reaches_the_view_whole(client, make_product):
    make_product(external_id="P1", title="Towel")
    client.get("/product/P1")  # an event without a search needs a product the visitor was shown
    body = json.dumps({"events": [{"type": "click", "product_id": "P1"}] * 50}).encode()
    response = client.post(
        "/api/events",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 201 and response.get_json()["stored"] == 50


def test_only_a_signed_in_admin_may_send_an_upload_sized_body(client, login):
    body = b"x" * (100 * 1024)
    headers = {"Content-Length": str(len(body))}
    anonymous = client.post(
        "/admin/catalog/import",
        input_stream=CountingStream(body),
        content_type="multipart/form-data; boundary=x",
        headers=headers,
    )
    assert anonymous.status_code == 413
    login("analyst", email="reader@example.com")
    with client.application.test_request_context():
        from flask_login import login_user

        from webapp.auth import AdminIdentity
        from webapp.models import AdminUser

        login_user(AdminIdentity(db.session.scalar(select(AdminUser))))
        assert body_limit("admin.catalog_import") == 32 * 1024  # an analyst cannot import either
