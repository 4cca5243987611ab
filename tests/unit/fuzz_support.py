"""What the API fuzz tests share: hypothesis settings, a small shop with one search made, and
the shape every refusal must have (a JSON 4xx naming the error)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from webapp.extensions import db

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def count(model) -> int:
    """Rows in a model's table."""
    return db.session.scalar(select(func.count()).select_from(model))


def open_shop(app, client, make_product) -> tuple[int, list[tuple[str, int]]]:
    """A few products, limits out of the way, and one search this client made: its id and hits."""
    app.config.update(SEARCH_RATE_LIMIT="1000000 per minute", EVENTS_RATE_LIMIT="1000000 per minute")
    app.config["IP_RATE_LIMIT"] = "1000000 per minute"
    for n in range(6):
        make_product(title=f"Cotton towel {n}", brand=["Acme", "<b>Brand</b>"][n % 2], price=5.0 + n)
    make_product(external_id="XSS", title="<script>alert(1)</script>")
    found = client.get("/api/search?q=towel").get_json()
    return found["search_id"], [(r["product_id"], r["position"]) for r in found["results"]]


def assert_json_error(response) -> dict:
    """A 4xx whose JSON body names the error; returns the body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], response.data[:300]
    return body
