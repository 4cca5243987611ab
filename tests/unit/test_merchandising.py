"""Merchandising in the web app: synonyms (CLI, admin, search, Explain), query rules (admin, search,
storefront, API, impressions, time windows), the follower's snapshot, and the learning loop."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from engine.training.dataset import (
    EventRecord,
    FeedbackLog,
    ImpressionRecord,
    ProductRecord,
    SearchRecord,
    build_dataset,
    click_rows,
)
from webapp.extensions import db
from webapp.models import Impression, QueryRule, Synonym, utcnow
from webapp.services.serving_follower import start_follower, stop_follower


def found(client, text: str) -> list[str]:
    response = client.get("/api/search", query_string={"q": text})
    assert response.status_code == 200
    return [hit["product_id"] for hit in response.get_json()["results"]]


def catalog(make_product) -> None:
    make_product(external_id="TV1", title="Wooden TV stand", brand="Oak", category_path="Furniture > Stands")
    make_product(external_id="TV2", title="Television stand with drawers", brand="Pine", category_path="Furniture")
    make_product(external_id="TV3", title="Metal TV stand", brand="Steel", category_path="Furniture > Stands")
    make_product(external_id="H1", title="Garden hose", brand="Green", category_path="Garden")


def test_synonyms_import_then_export_is_a_round_trip(app, runner, tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("# shop words\nTV, television\nsneakers, trainers => running shoes\n")
    result = runner.invoke(args=["synonyms", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Saved 2 synonym rules" in result.output
    exported = runner.invoke(args=["synonyms", "export"]).output
    assert exported == "tv, television\nsneakers, trainers => running shoes\n"


def test_a_bad_synonyms_file_names_its_lines_and_keeps_what_is_stored(app, runner, tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("tv, television\n")
    bad.write_text("mug, cup\nlonely\nx => y => z\n")
    assert runner.invoke(args=["synonyms", "import", str(good)]).exit_code == 0
    result = runner.invoke(args=["synonyms", "import", str(bad)])
    assert result.exit_code != 0
    assert "bad.txt:2:" in result.output and "bad.txt:3:" in result.output and "nothing was changed" in result.output
    assert [s.terms for s in db.session.scalars(select(Synonym))] == [["tv", "television"]]


def test_admin_saves_synonyms_and_search_expands_them_below_typed_words(app, client, login, make_product):
    catalog(make_product)
    login("admin")
    assert found(client, "tv") == ["TV1", "TV3"]
    page = client.post("/admin/rules/synonyms", data={"text": "tv, television\nbroken,\n"})
    assert page.status_code == 400 and "Line 2" in page.get_data(as_text=True)
    assert db.session.scalar(select(Synonym.id)) is None
    assert client.post("/admin/rules/synonyms", data={"text": "tv, television\n"}).status_code == 302
    assert found(client, "tv") == ["TV1", "TV3", "TV2"]  # the synonym-only match after both typed-word matches
    explain = client.get("/admin/explain", query_string={"q": "tv", "visitor": ""})
    assert "tv → television" in explain.get_data(as_text=True)


def _rule(client, **fields):
    data = {"query": "tv stand", "match": "exact", "enabled": "on", **fields}
    return client.post("/admin/rules/new", data=data)


def test_a_pin_rule_saved_in_the_admin_puts_the_product_first_and_marks_the_impression(
    app, client, login, make_product
):
    catalog(make_product)
    login("admin")
    assert found(client, "tv stand")[0] == "TV1"
    assert _rule(client, pins="TV3 1").status_code == 302
    body = client.get("/api/search", query_string={"q": "tv stand"}).get_json()
    assert [h["product_id"] for h in body["results"]][:2] == ["TV3", "TV1"]
    assert body["results"][0]["imposed"] == "pin" and body["results"][1]["imposed"] is None
    assert found(client, "big tv stand")[0] == "TV1"  # an exact rule only
    marked = db.session.execute(select(Impression.position, Impression.imposed).where(Impression.imposed.is_not(None)))
    assert [tuple(row) for row in marked] == [(1, "pin")]  # the API search's pin; nothing else is marked


def test_contains_rules_hide_and_bury_by_category(app, client, login, make_product):
    catalog(make_product)
    login("admin")
    assert _rule(client, query="stand", match="contains", hides="TV3").status_code == 302
    assert found(client, "tv stand") == ["TV1", "TV2"]
    assert found(client, "tv") == ["TV1", "TV3"]  # no "stand" in it
    assert _rule(client, query="tv", boosts="-brand: oak").status_code == 302
    assert found(client, "tv") == ["TV3", "TV1"]
    assert _rule(client, query="garden", boosts="+category: stands").status_code == 302
    assert found(client, "garden")[0] == "H1"  # a boost moves only results the query found
    assert _rule(client, query="tv", boosts="+brand: Nobody\nwhatever").status_code == 400


def test_a_rule_applies_only_within_its_time_window(app, client, login, make_product):
    catalog(make_product)
    login("admin")
    now = utcnow()
    fmt = "%Y-%m-%dT%H:%M"
    later = {"starts_at": (now + timedelta(hours=1)).strftime(fmt)}
    assert _rule(client, pins="TV3 1", **later).status_code == 302
    assert found(client, "tv stand")[0] == "TV1"  # not started yet
    rule = db.session.scalar(select(QueryRule))
    rule.starts_at, rule.ends_at, rule.updated_at = now - timedelta(hours=2), now - timedelta(hours=1), utcnow()
    db.session.commit()
    assert found(client, "tv stand")[0] == "TV1"  # over
    rule.ends_at, rule.updated_at = now + timedelta(hours=1), utcnow()
    db.session.commit()
    assert found(client, "tv stand")[0] == "TV3"  # within it
    bad = _rule(client, pins="TV1 1", starts_at="2026-12-05T10:00", ends_at="2026-12-04T10:00")
    assert bad.status_code == 400


def test_redirect_on_the_storefront_and_in_the_api(app, client, login, make_product):
    catalog(make_product)
    login("admin")
    assert _rule(client, query="gift", redirect_url="/product/H1").status_code == 302
    page = client.get("/search", query_string={"q": "Gift"})
    assert page.status_code == 302 and page.headers["Location"].endswith("/product/H1")
    assert client.get("/api/search", query_string={"q": "gift"}).get_json()["redirect"] == "/product/H1"
    assert _rule(client, query="x", redirect_url="javascript:alert(1)").status_code == 400
    assert _rule(client, query="x", redirect_url="//evil.example").status_code == 400


def test_analysts_read_rules_but_cannot_change_them(app, client, login, make_product):
    catalog(make_product)
    login("analyst")
    assert client.get("/admin/rules").status_code == 200
    assert client.get("/admin/rules/new").status_code == 403
    assert _rule(client, pins="TV3 1").status_code == 403
    assert db.session.scalar(select(QueryRule.id)) is None


def test_edit_and_delete_a_rule(app, client, login, make_product):
    catalog(make_product)
    login("admin")
    _rule(client, pins="TV3 1")
    rule_id = db.session.scalar(select(QueryRule.id))
    form = client.get(f"/admin/rules/{rule_id}").get_data(as_text=True)
    assert "TV3 1" in form and "admin@example.com" in form
    data = {"query": "tv stand", "match": "exact", "enabled": "on", "pins": "TV2 1"}
    assert client.post(f"/admin/rules/{rule_id}", data=data).status_code == 302
    assert found(client, "tv stand")[0] == "TV2"
    assert client.post(f"/admin/rules/{rule_id}/delete").status_code == 302
    assert found(client, "tv stand")[0] == "TV1"


def test_the_follower_snapshot_carries_rules_and_synonyms_within_a_second(app, client, login, make_product):
    catalog(make_product)
    app.config["SERVING_FOLLOW_SECONDS"] = 0.02
    app.config["INDEX_SYNC_SECONDS"] = 0.25
    follower = start_follower(app)
    try:
        db.session.add(QueryRule(query="tv stand", pins=[[3, 1]], hides=[], boosts=[], note=""))
        db.session.add(Synonym(terms=["tv", "television"], targets=[]))
        db.session.commit()
        saved = datetime.now()
        while (datetime.now() - saved).total_seconds() < 1.0:
            snapshot = follower.snapshot
            if snapshot.merchandising.rules.rules and found(client, "tv stand")[:1] == ["TV3"]:
                break
        assert found(client, "tv stand")[:2] == ["TV3", "TV1"]
        assert (datetime.now() - saved).total_seconds() < 1.0
    finally:
        stop_follower(app)


def test_imposed_impressions_are_not_relevance_evidence():
    now = datetime(2026, 12, 1)
    log = FeedbackLog(products=[ProductRecord(i, f"product {i}") for i in (1, 2, 3)])
    log.searches.append(SearchRecord(1, "mug", now))
    log.impressions += [ImpressionRecord(1, 3, 1, imposed=True), ImpressionRecord(1, 1, 2), ImpressionRecord(1, 2, 3)]
    log.events += [EventRecord("click", 3, 1, 1, now), EventRecord("click", 1, 1, 2, now)]
    data = build_dataset(log, lambda _: 1.0, now)
    assert {e.product_id for e in data.examples} == {1, 2}
    assert data.counts["skipped_impressions_imposed"] == 1
    assert click_rows(log, 24)[1] == [1, 2]


def test_preview_shows_a_query_with_and_without_its_rules_and_logs_nothing(app, client, login, make_product):
    from webapp.models import SearchQuery

    catalog(make_product)
    login("analyst")
    db.session.add(QueryRule(query="tv stand", pins=[[3, 1]], hides=[], boosts=[], note=""))
    db.session.commit()
    page = client.get("/admin/rules/preview", query_string={"q": "tv stand"}).get_data(as_text=True)
    without, with_rules = page.split("Without rules")[1].split("With rules")
    assert without.index("TV1") < without.index("TV3")
    assert with_rules.index("TV3") < with_rules.index("TV1") and ">pin<" in with_rules
    assert db.session.scalar(select(SearchQuery.id)) is None
