"""GET /api/recommendations, its logging, bought-together counts and events from a list."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.recommending.co_occurrence import PairBoard
from webapp.extensions import db
from webapp.models import Event, PairSignal, Product, RecommendationItem, RecommendationList, epoch
from webapp.services.signals import half_lives


@pytest.fixture
def shop(make_product):
    make_product(external_id="K1", title="Chef knife", brand="Acme", category_path="Kitchen > Knives", rating_count=90)
    make_product(
        external_id="K2", title="Cutting board", brand="Bolt", category_path="Kitchen > Boards", rating_count=50
    )
    make_product(
        external_id="K3", title="Knife sharpener", brand="Core", category_path="Kitchen > Tools", rating_count=5
    )
    make_product(external_id="K4", title="Cleaver", brand="Dune", category_path="Kitchen > Knives", price=None)
    make_product(
        external_id="G1", title="Garden hose", brand="Verde", category_path="Garden > Watering", rating_count=70
    )


def pid(external_id: str) -> int:
    return db.session.scalar(select(Product.id).where(Product.external_id == external_id))


def lists(client, query: str) -> dict:
    response = client.get(f"/api/recommendations?{query}")
    assert response.status_code == 200, response.get_json()
    return {found["list"]: found for found in response.get_json()["lists"]}


def buy(client, *external_ids: str, kind: str = "purchase") -> None:
    for external_id in external_ids:  # an event without a search or list names a product the visitor saw
        client.get(f"/product/{external_id}")
    events = [{"type": kind, "product_id": e} for e in external_ids]
    assert client.post("/api/events", json={"events": events}).status_code == 201


def test_product_page_lists_answer_without_a_model_version_and_are_logged(client, shop):
    found = lists(client, "context=product&product_id=K1&limit=3")
    similar = found["similar"]
    # Lexical only: the same top-level category's bestsellers; K4 has no price, K1 is the anchor.
    assert [r["product_id"] for r in similar["results"]] == ["K2", "K3"]
    assert {r["source"] for r in similar["results"]} == {"bestsellers"}
    assert found["bought_together"]["results"] == []  # no history, and similar already took the category
    row = db.session.get(RecommendationList, similar["recommendation_id"])
    assert (row.context, row.name, row.strategy, row.anchor_product_id) == ("product", "similar", "blended", pid("K1"))
    items = db.session.scalars(
        select(RecommendationItem)
        .where(RecommendationItem.recommendation_id == row.id)
        .order_by(RecommendationItem.position)
    ).all()
    assert [(i.position, i.product_id, i.source) for i in items] == [
        (1, pid("K2"), "bestsellers"),
        (2, pid("K3"), "bestsellers"),
    ]


def test_a_purchase_changes_bought_together_for_both_products_at_once(app, client, shop):
    other = app.test_client()
    buy(other, "K1", "G1")
    for anchor, partner in (("K1", "G1"), ("G1", "K1")):
        together = lists(client, f"context=cart&product_id={anchor}")["bought_together"]
        assert together["results"][0]["product_id"] == partner
        assert together["results"][0]["source"] == "bought_together"


def test_pair_counts_in_the_database_match_the_engine_and_survive_a_rebuild(app, client, runner, shop):
    buy(client, "K1", "K2", kind="add_to_cart")
    buy(client, "K3")
    buy(app.test_client(), "K1", "K3")
    board = PairBoard(half_lives=half_lives())
    for event in db.session.scalars(select(Event).order_by(Event.id)):
        board.add_basket_event(event.visitor_id, event.product_id, epoch(event.created_at))
    stored = {(r.product_id, r.partner_id): r.long for r in db.session.scalars(select(PairSignal))}
    expected = {key: count.long for key, count in board.counts.items()}
    assert stored == pytest.approx(expected) and stored[(pid("K1"), pid("K3"))] == pytest.approx(2.0, abs=1e-3)
    db.session.execute(PairSignal.__table__.delete())
    db.session.commit()
    result = runner.invoke(args=["signals", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "5 cart and purchase events" in result.output
    rebuilt = {(r.product_id, r.partner_id): r.long for r in db.session.scalars(select(PairSignal))}
    assert rebuilt == pytest.approx(expected, rel=1e-3)


def test_events_from_a_list_are_stored_with_its_id_and_refused_for_another_visitors(app, client, shop):
    similar = lists(client, "context=product&product_id=K1")["similar"]
    rid = similar["recommendation_id"]
    click = {"type": "click", "product_id": "K2", "recommendation_id": rid, "position": 1}
    assert client.post("/api/events", json={"events": [click]}).status_code == 201
    stored = db.session.scalar(select(Event).where(Event.recommendation_id == rid))
    assert (stored.product_id, stored.position, stored.search_id) == (pid("K2"), 1, None)

    stranger = app.test_client()
    refused = stranger.post("/api/events", json={"events": [click]})
    assert refused.status_code == 400 and f"unknown recommendation {rid}" in str(refused.get_json()["details"])
    wrong_place = {**click, "position": 2}
    refused = client.post("/api/events", json={"events": [wrong_place]})
    assert refused.status_code == 400 and "not shown at that position" in str(refused.get_json()["details"])
    both = {**click, "search_id": 1}
    assert client.post("/api/events", json={"events": [both]}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


def test_home_gives_a_new_visitor_trending_and_a_known_one_their_categories(client, shop):
    fresh = lists(client, "context=home&limit=2")
    assert set(fresh) == {"for_you", "trending"} and len(fresh["for_you"]["results"]) == 2
    buy(client, "G1", kind="click")
    mine = lists(client, "context=home&limit=4")["for_you"]["results"]
    assert "G1" not in [r["product_id"] for r in mine]  # what they engaged with is not recommended back


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "context must be one of"),
        ("context=shelf", "context must be one of"),
        ("context=product", "needs one product_id"),
        ("context=product&product_id=NOPE", "unknown product"),
        ("context=product&product_id=K1&limit=0", "limit must be"),
        ("context=product&product_id=K1&limit=x", "limit must be"),
        ("context=home&product_id=K1", "takes no product_id"),
    ],
)
def test_bad_input_is_a_400_with_a_message(client, shop, query, message):
    response = client.get(f"/api/recommendations?{query}")
    assert response.status_code == 400 and message in response.get_json()["error"]
    assert db.session.scalar(select(func.count()).select_from(RecommendationList)) == 0
