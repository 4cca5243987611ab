"""End to end through the API, on the real clock: purchases after a query lift the product in that
query's results as soon as an active context ranker weighs "bought after this query"."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.ranking.context_ranker import ContextRanker
from webapp.extensions import db
from webapp.models import ContextRankerFit, Impression


@pytest.fixture
def shop(app, make_product):
    # Signals and the ranker are re-read on every search here (production: every 0.2 s and 2 s).
    app.config.update(SIGNAL_SYNC_SECONDS=0.0, CONTEXT_RANKER_CHECK_SECONDS=0.0, EVENTS_RATE_LIMIT="1000 per minute")
    for n in range(1, 7):
        make_product(external_id=f"T{n}", title=f"Cotton towel {n}", rating_count=100 - n)
    make_product(external_id="MUG", title="Cotton mug")


def activate(weights: dict[str, float]) -> None:
    db.session.add(ContextRankerFit(status="active", weights=ContextRanker(weights).to_dict(), metrics={}, pages=0))
    db.session.commit()


def order(client, text: str) -> tuple[int, list[str]]:
    found = client.get("/api/search", query_string={"q": text}).get_json()
    return found["search_id"], [r["product_id"] for r in found["results"]]


def buy(client, search_id: int, product_id: str, times: int) -> None:
    events = [{"type": "purchase", "product_id": product_id, "search_id": search_id}] * times
    assert client.post("/api/events", json={"events": events}).status_code == 201


def test_purchases_after_a_query_raise_the_product_in_that_querys_results(shop, client):
    activate({"relevance": 1.0, "query_affinity": 4.0})
    _, cotton = order(client, "cotton")
    sid, before = order(client, "towel")
    assert len(before) == 6
    last = before[-1]
    buy(client, sid, last, 5)
    sid, after = order(client, "towel")
    assert after[0] == last and after.index(last) < before.index(last)
    # The impression log says why: the bought product's query affinity on this page.
    logged = {
        i.position: i.features["query_affinity"]
        for i in db.session.scalars(select(Impression).where(Impression.search_id == sid))
    }
    assert logged[1] > 0 and all(value == 0 for position, value in logged.items() if position != 1)
    # Another query is not moved by what was bought after "towel".
    assert order(client, "cotton")[1] == cotton


def test_without_an_active_ranker_the_same_purchases_do_not_reorder(shop, client):
    sid, before = order(client, "towel")
    buy(client, sid, before[-1], 5)
    assert order(client, "towel")[1] == before
    # Retired or refused fits are never used.
    db.session.add(ContextRankerFit(status="refused", weights={"weights": {"query_affinity": 9.0}}, metrics={}))
    db.session.commit()
    assert order(client, "towel")[1] == before
