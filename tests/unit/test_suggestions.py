"""The one rule for what the shop shows every shopper as a suggestion or popular search
(webapp.services.suggestions): distinct visitors from distinct networks in distinct hours,
with results, minus the admin's blocklist; and the admin's review of new suggestions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from webapp.extensions import db
from webapp.models import SearchQuery, SuggestionBlock, Visitor, utcnow
from webapp.services import search as search_service
from webapp.services.client_hash import client_hash, network_of
from webapp.services.suggestions import popular_queries, unreviewed_suggestions


@pytest.fixture
def catalog(make_product):
    make_product(external_id="T1", title="Cotton bath towel", rating_count=50)
    make_product(external_id="S1", title="Visit scam example towel", rating_count=1)


def chips(page: str) -> list[str]:
    return re.findall(r'class="chip" href="/search\?q=([^"]+)"', page)


def log(text: str, visitor: str, network: str, hours_ago: float, result_count: int = 3) -> None:
    if db.session.get(Visitor, visitor) is None:
        db.session.add(Visitor(id=visitor))
        db.session.flush()
    db.session.add(
        SearchQuery(
            text=text,
            normalized=text,
            result_count=result_count,
            visitor_id=visitor,
            client_hash=client_hash(network, "k"),
            created_at=utcnow() - timedelta(hours=hours_ago),
        )
    )
    db.session.commit()


def test_networks_not_addresses_are_counted():
    assert network_of("203.0.113.7") == network_of("203.0.113.200") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2::1") == network_of("2001:db8:1:ffff::9") == "2001:db8:1::/48"
    assert network_of("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert client_hash("203.0.113.7", "k") == client_hash("203.0.113.8", "k") != client_hash("198.51.100.1", "k")
    assert client_hash("203.0.113.7", "k") != client_hash("203.0.113.7", "other key")  # keyed: not reversible by lookup


def test_a_query_needs_visitors_networks_hours_and_results(app):
    log("towel", "a", "203.0.113.1", hours_ago=3)
    log("towel", "b", "203.0.113.2", hours_ago=1)  # two visitors, one network
    log("scam.example", "c", "198.51.100.1", hours_ago=1)
    log("scam.example", "d", "192.0.2.1", hours_ago=1)  # two networks, one hour
    log("zzz", "e", "198.51.100.1", hours_ago=5, result_count=0)
    log("zzz", "f", "192.0.2.1", hours_ago=1, result_count=0)  # found nothing
    assert popular_queries() == []
    log("towel", "g", "192.0.2.1", hours_ago=2)
    log("scam.example", "h", "192.0.2.9", hours_ago=4)
    assert popular_queries() == ["scam.example", "towel"] or popular_queries() == ["towel", "scam.example"]
    app.config["SUGGEST_MIN_HOURS"] = 5
    assert popular_queries() == []


def test_the_blocklist_removes_whole_words_from_both_places(app):
    for visitor, network, hours in (("a", "203.0.113.1", 1), ("b", "198.51.100.1", 3)):
        log("visit scam.example now", visitor, network, hours)
        log("scampi", visitor, network, hours)
    db.session.add(SuggestionBlock(phrase="scam"))
    db.session.commit()
    assert popular_queries() == ["scampi"]
    assert [text for text, _, _ in unreviewed_suggestions()] == ["scampi"]


def test_two_cookies_on_one_address_cannot_poison_the_home_page(app, catalog, monkeypatch):
    """The probe's attack: repeat a scam query with two cookies from one address, over hours."""
    now = [utcnow()]
    monkeypatch.setattr(search_service, "utcnow", lambda: now[0])
    for hour in range(3):
        now[0] += timedelta(hours=1)
        for _ in range(2):
            cookie_jar = app.test_client()
            cookie_jar.get("/search?q=visit+scam+example", environ_base={"REMOTE_ADDR": "203.0.113.5"})
            cookie_jar.get("/search?q=visit+scam+example", environ_base={"REMOTE_ADDR": f"203.0.113.{10 + hour}"})
    home = app.test_client().get("/").get_data(as_text=True)
    assert chips(home) == []
    now[0] += timedelta(hours=1)
    app.test_client().get("/search?q=visit+scam+example", environ_base={"REMOTE_ADDR": "198.51.100.4"})
    home = app.test_client().get("/").get_data(as_text=True)
    assert chips(home) == ["visit+scam+example"]


def test_admin_blocks_and_reviews_new_suggestions(app, client, login):
    log("towel", "a", "203.0.113.1", hours_ago=30)
    log("towel", "b", "198.51.100.1", hours_ago=20)
    log("free crypto", "a", "203.0.113.1", hours_ago=3)
    log("free crypto", "b", "198.51.100.1", hours_ago=1)
    login()
    page = client.get("/admin/suggestions").get_data(as_text=True)
    assert page.index("free crypto") < page.index("towel")  # newest first
    assert client.post("/admin/suggestions/keep", data={"query": "towel"}).status_code == 302
    assert client.post("/admin/suggestions/block", data={"phrase": "  Crypto "}).status_code == 302
    page = client.get("/admin/suggestions").get_data(as_text=True)
    assert "No new suggestions" in page and "<code>crypto</code>" in page
    assert popular_queries() == ["towel"]
    response = client.post("/admin/suggestions/block", data={"phrase": "   "})
    assert response.status_code == 400 and "Enter a word or phrase" in response.get_data(as_text=True)
    block = db.session.query(SuggestionBlock).one()
    client.post(f"/admin/suggestions/unblock/{block.id}")
    assert sorted(popular_queries()) == ["free crypto", "towel"]


def test_analysts_read_but_cannot_block(app, client, login):
    login("analyst")
    assert client.get("/admin/suggestions").status_code == 200
    assert client.post("/admin/suggestions/block", data={"phrase": "x"}).status_code == 403
    assert db.session.query(SuggestionBlock).count() == 0
