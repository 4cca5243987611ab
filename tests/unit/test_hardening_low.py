"""The probe's low findings (issue 21), one test each: a CR/LF `next=`, a 400-digit `ts`, the
history-clear endpoint from another site, a click recorded per reload, admin pages in caches,
and where the OpenAPI description and the server disagreed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Event

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())


def count_events(kind: str = "click") -> int:
    return db.session.scalar(select(func.count()).select_from(Event).where(Event.type == kind))


@pytest.mark.parametrize("target", ["/admin\r\nSet-Cookie: x=1", "/admin/catalog\tX", "/admin\n"])
def test_a_next_with_cr_or_lf_redirects_safely(client, login, target):
    login("admin")
    response = client.get("/admin/login", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert "Set-Cookie: x" not in str(response.headers)


def test_a_400_digit_ts_is_a_400_with_a_message(client, make_product):
    make_product(external_id="P1")
    body = '{"events": [{"type": "click", "product_id": "P1", "ts": ' + "9" * 400 + "}]}"
    response = client.post("/api/events", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["details"] == [{"index": 0, "error": "ts must be epoch seconds or an ISO 8601 time"}]


def test_a_position_without_search_id_is_refused(client, make_product):
    make_product(external_id="P1")
    response = client.post("/api/events", json={"events": [{"type": "click", "product_id": "P1", "position": 3}]})
    assert response.status_code == 400
    assert response.get_json()["details"] == [
        {"index": 0, "error": "position needs the search_id or recommendation_id it was shown in"}
    ]
    assert count_events() == 0


def test_unknown_top_level_fields_of_an_event_batch_are_refused(client, make_product):
    make_product(external_id="P1")
    response = client.post("/api/events", json={"events": [{"type": "click", "product_id": "P1"}], "x": 1})
    assert response.status_code == 400 and "unknown fields: x" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Referer": "https://evil.example/page"}, 403),
        ({"Origin": "http://localhost"}, 200),
        ({"Referer": "http://localhost/search?q=x"}, 200),
        ({}, 200),  # a JSON client that is no browser sends neither
    ],
)
def test_history_clear_refuses_other_origins(client, headers, status):
    response = client.post("/api/visitor/history/clear", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert "another site" in response.get_json()["error"]


def test_a_reload_of_a_result_link_records_one_click(client, make_product):
    make_product(external_id="P1", title="Cotton towel")
    found = client.get("/api/search", query_string={"q": "towel"}).get_json()
    hit = found["results"][0]
    url = f"/product/{hit['product_id']}?sid={found['search_id']}&pos={hit['position']}"
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert count_events() == 1


@pytest.mark.parametrize("url", ["/admin/", "/admin/catalog", "/admin/login", "/admin/no-such-page"])
def test_admin_pages_are_never_cached(client, login, url):
    if url != "/admin/login":
        login("admin")
    assert client.get(url).headers["Cache-Control"] == "no-store"


def test_the_shop_pages_stay_cacheable(client):
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")


def test_the_spec_bounds_what_the_server_accepts():
    event = SPEC["components"]["schemas"]["Event"]["properties"]
    iso = event["ts"]["oneOf"][1]
    assert "pattern" in iso  # an ISO 8601 time, not any string of 40 characters
    assert "search_id" in event["position"]["description"]
    for path in ("/api/search", "/api/suggest"):
        assert "414" in SPEC["paths"][path]["get"]["responses"], path
    assert "413" in SPEC["paths"]["/api/events"]["post"]["responses"]
    assert "403" in SPEC["paths"]["/api/visitor/history/clear"]["post"]["responses"]
