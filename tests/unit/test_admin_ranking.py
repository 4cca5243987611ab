"""The admin's ranking pages (webapp.admin.ranking): the active context ranker's weights and
history, "Refit now", and the explain view (webapp.services.explain), which answers a search
as the shop would and logs nothing. Enqueueing is observed on a patched send_task."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.ranking.context_ranker import ContextRanker
from webapp.extensions import db
from webapp.models import Event, Impression, Job, ProductSignal, SearchQuery, utcnow
from webapp.services.context_fit import store_fit
from webapp.services.explain import explain_search

QUERY = "desk lamp"
WEIGHTS = {"relevance": 1.0, "freshness": 2.0}
METRICS = {
    "searches": 120,
    "pages": 80,
    "train_pairs": 400,
    "holdout_pairs": 90,
    "holdout_accuracy": 0.81234,
    "holdout_accuracy_relevance_only": 0.6,
    "propensity": {"model": "position-based click model", "propensities": [1.0, 0.5]},
}


@pytest.fixture
def send_task(app):
    ids = iter(f"task-{n}" for n in range(1, 100))
    with mock.patch.object(
        app.extensions["celery"], "send_task", side_effect=lambda *a, **k: SimpleNamespace(id=next(ids))
    ) as patched:
        yield patched


@pytest.fixture
def lamps(app, make_product) -> dict[str, set[str]]:
    """Old and new lamps in turns in the stage-1 order (lexical ties keep the order they were made in)."""
    old_at = utcnow() - timedelta(days=365)
    made = {"old": set(), "new": set()}
    for n, c in enumerate("abcdefgh"):
        kind = "old" if n % 2 == 0 else "new"
        made[kind].add(make_product(title=f"{QUERY} {c}", created_at=old_at if kind == "old" else utcnow()).external_id)
    return made


def fit(weights: dict | None = None, metrics: dict | None = None):
    if weights is None:
        return store_fit("refused", {}, {"refused": "too few pairs to fit (train 3, holdout 0; need 50)"}, 3)
    return store_fit("active", ContextRanker(weights, 0.3).to_dict(), metrics or METRICS, 120)


def counts() -> tuple[int, int, int, int]:
    db.session.expire_all()
    return tuple(
        db.session.scalar(select(func.count()).select_from(m)) for m in (SearchQuery, Impression, ProductSignal, Event)
    )


def chart(page: str, chart_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{chart_id}">(.*?)</script>', page, re.S)
    assert match, f"no {chart_id} on the page"
    return json.loads(match.group(1))


def test_the_ranking_page_shows_weights_metrics_history_and_no_refit_for_analysts(client, login):
    login("analyst")
    fit()
    active = fit(WEIGHTS, {**METRICS, "searches": 821220, "seconds": 60.52})
    page = client.get("/admin/ranking").get_data(as_text=True)
    assert "<strong>821,220</strong>" in page and "<strong>1 min 1 s</strong>" in page and "60.5200" not in page
    assert f"Active ranker: fit {active.id}" in page and 'href="/admin/ranking"' in page  # in the nav
    assert "0.8123" in page and "held-out pair accuracy" in page and "+2.0000" in page and "freshness" in page
    assert "too few pairs to fit" in page and "st-refused" in page and "Refit now" not in page
    weights = chart(page, "chart-weights")
    assert weights["labels"][:6] == ["relevance", "ctr", "popularity_recent", "trending", "query_affinity", "freshness"]
    assert weights["series"][0]["data"][0] == 1.0 and weights["series"][0]["data"][5] == 2.0
    assert 'data-ranking-chart="chart-weights"' in page and "js/admin_ranking.js" in page


def test_the_ranking_page_without_a_fit_says_stage_two_keeps_the_order(client, login):
    login("admin")
    page = client.get("/admin/ranking").get_data(as_text=True)
    assert "No context ranker is active" in page and "No fits yet." in page and "Refit now" in page
    assert "chart-weights" not in page


def test_refit_enqueues_one_fit_job_at_a_time(client, login, send_task):
    login("admin")
    response = client.post("/admin/ranking/refit")
    [job] = db.session.scalars(select(Job)).all()
    assert (job.kind, job.status, job.params, job.celery_task_id) == (
        "context_fit",
        "queued",
        {"trigger": "admin"},
        "task-1",
    )
    send_task.assert_called_once_with("ranking.fit_context", args=[job.id], ignore_result=True)
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/jobs/{job.id}"
    again = client.post("/admin/ranking/refit", follow_redirects=True).get_data(as_text=True)
    assert f"a ranker fit is already queued as job {job.id}" in again and send_task.call_count == 1


def test_analysts_cannot_refit(client, login, send_task):
    login("analyst")
    assert client.post("/admin/ranking/refit").status_code == 403
    assert send_task.call_count == 0 and db.session.scalar(select(func.count(Job.id))) == 0


def test_explain_splits_each_score_into_weight_times_value(app, lamps):
    fit(WEIGHTS)
    explanation = explain_search(MultiDict({"q": QUERY}))
    assert explanation.applied and explanation.ranker.weights == WEIGHTS and not explanation.personal
    hits = explanation.hits
    assert [h.final_rank for h in hits] == list(range(1, 9))
    assert {h.external_id for h in hits[:4]} == lamps["new"]  # freshness lifted them
    assert sorted(h.stage1_rank for h in hits[:4]) == [2, 4, 6, 8]
    for hit in hits:
        shares = {f.name: f for f in hit.features}
        assert shares["freshness"].contribution == pytest.approx(2.0 * shares["freshness"].value)
        assert shares["relevance"].contribution == pytest.approx(shares["relevance"].value)
        assert shares["relevance"].value == pytest.approx(10 / (10 + hit.stage1_rank), abs=1e-5)
        assert shares["ctr"].contribution == 0.0 and shares["ctr"].weight == 0.0
        assert hit.bonus == pytest.approx(0.3 * hit.explore)
        assert hit.total == pytest.approx(sum(f.contribution for f in hit.features) + hit.bonus)
        assert hit.total == pytest.approx(hit.score, abs=1e-4)  # what the shop served
    assert hits[0].explore > 0.9 and hits[-1].explore == 0.0  # new and never shown; a year old
    assert len(explanation.chart["series"]) == 13 and len(explanation.chart["labels"]) == 8
    assert explanation.chart["series"][-1]["label"] == "exploration bonus"


def test_explain_page_shows_contributions_and_logs_no_search(app, client, login, lamps):
    login("analyst")
    fit(WEIGHTS)
    shopper = app.test_client()
    shopper.get("/api/search", query_string={"q": QUERY})  # the signals and search tables hold a row already
    before = counts()
    page = client.get("/admin/explain", query_string={"q": QUERY}).get_data(as_text=True)
    assert counts() == before
    assert "re-ordered" in page and "non-personal" in page and "Contributions to the stage-2 score" in page
    assert "exploration bonus" in page and "+2.0000" in page  # freshness's weight in every result's table
    stacked = chart(page, "chart-contributions")
    assert stacked["stacked"] is True and stacked["series"][5]["label"] == "freshness"


def test_explain_for_a_visitor_uses_their_session_without_logging(app, client, login, lamps):
    login("admin")
    shopper = app.test_client()
    page = shopper.get("/api/search", query_string={"q": QUERY}).get_json()
    first = page["results"][0]
    event = {"type": "purchase", "product_id": first["product_id"], "search_id": page["search_id"], "position": 1}
    assert shopper.post("/api/events", json={"events": [event]}).status_code == 201
    visitor = db.session.scalar(select(SearchQuery.visitor_id))
    before = counts()
    html = client.get("/admin/explain", query_string={"q": QUERY, "visitor": visitor}).get_data(as_text=True)
    assert counts() == before
    assert "<strong>personal</strong>" in html and "profile from 1 recent interactions" in html
    assert "stage-1 order" in html and "no context ranker is active" in html  # features shown, no weights yet
    assert "chart-contributions" not in html


def test_explain_without_a_query_shows_the_form_and_bad_input_is_a_400(client, login):
    login("analyst")
    page = client.get("/admin/explain").get_data(as_text=True)
    assert 'name="q"' in page and 'name="visitor"' in page and "Final rank" not in page
    assert client.get("/admin/explain", query_string={"q": "lamp", "visitor": "x" * 65}).status_code == 400
    assert client.get("/admin/explain", query_string={"q": "lamp", "page": "0"}).status_code == 400


def test_the_query_detail_page_links_to_explain(app, client, login, lamps):
    login("analyst")
    app.test_client().get("/api/search", query_string={"q": QUERY})
    visitor = db.session.scalar(select(SearchQuery.visitor_id))
    page = client.get("/admin/analytics/query", query_string={"q": QUERY}).get_data(as_text=True)
    assert "/admin/explain?q=desk+lamp" in page
    assert f"/admin/explain?q=desk+lamp&amp;visitor={visitor}" in page
