"""Fitting the context ranker on logged pages (webapp.services.context_fit), its task
(worker.tasks.ranking) and CLI (webapp.cli_ranker).

The log is made through the real API: shoppers (one test client each, so one visitor
each) search, the search logs each shown product's context features, and they click
and buy. Here they always pick one of the new products, which the lexical stage ranks
in turns with the old ones: the fit must learn that freshness counts.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from webapp.extensions import db
from webapp.models import ContextRankerFit, Event, Impression, Job, SearchQuery, utcnow
from webapp.services import context_fit
from webapp.services.context_fit import fit_context_ranker_from_logs, read_logged_pages
from worker.tasks.ranking import fit_context, run_context_fit_job, scheduled_context_fit

QUERY = "desk lamp"


@pytest.fixture
def lamps(app, make_product) -> dict[str, set[str]]:
    """Year-old and brand-new lamps made in turns (lexical ties keep that order): position says nothing of age."""
    old_at = utcnow() - timedelta(days=365)
    made = {"old": set(), "new": set()}
    for n, c in enumerate("abcdefgh"):
        at = old_at if n % 2 == 0 else utcnow()
        made["old" if n % 2 == 0 else "new"].add(make_product(title=f"{QUERY} {c}", created_at=at).external_id)
    return made


def shop(app, lamps: dict[str, set[str]], searches: int, seed: int = 3) -> list[dict]:
    """Each search by a new visitor, who clicks one new lamp and sometimes buys it; returns the pages."""
    rng = random.Random(seed)
    pages = []
    for _ in range(searches):
        client = app.test_client()
        page = client.get("/api/search", query_string={"q": QUERY}).get_json()
        fresh = [r for r in page["results"] if r["product_id"] in lamps["new"]]
        chosen = rng.choice(fresh)
        event = {"product_id": chosen["product_id"], "search_id": page["search_id"], "position": chosen["position"]}
        events = [{"type": "click", **event}] + ([{"type": "purchase", **event}] if rng.random() < 0.3 else [])
        response = client.post("/api/events", json={"events": events})
        assert response.status_code == 201, response.get_data(as_text=True)
        pages.append(page)
    return pages


def fits() -> list[ContextRankerFit]:
    db.session.expire_all()
    return list(db.session.scalars(select(ContextRankerFit).order_by(ContextRankerFit.id)))


def test_stage_one_shows_old_and_new_lamps_in_turns(app, lamps):
    # The premise of the fit tests: relevance alone cannot tell the shoppers' choices apart.
    [page] = shop(app, lamps, 1)
    ages = ["new" if r["product_id"] in lamps["new"] else "old" for r in page["results"]]
    assert ages == ["old", "new"] * 4


def test_feedback_for_new_products_fits_a_positive_freshness_weight(app, lamps):
    # These shoppers pick among the new lamps whatever their position: no position bias. The
    # order never varies, so the click model cannot learn that and says so; the configured
    # fallback curve is then the shop's belief, here flat.
    app.config["PROPENSITY_FALLBACK_POWER"] = 0.0
    shop(app, lamps, 40)
    row = fit_context_ranker_from_logs()
    assert row.status == "active", row.metrics
    weights = row.weights["weights"]
    assert weights["freshness"] > 0
    assert weights["freshness"] > abs(weights["relevance"])
    m = row.metrics
    assert m["searches"] == m["pages"] == row.pages == 40
    assert m["holdout_accuracy"] > m["holdout_accuracy_relevance_only"]
    assert m["train_pairs"] >= 50 and m["holdout_pairs"] > 0
    assert m["propensity"]["model"] == "(1/k)^0 (click model not identified)" and m["propensity"]["impressions"] == 320
    assert m["propensity"]["identification"]["identified"] is False
    assert row.weights["explore_bonus"] == app.config["EXPLORE_BONUS"]
    assert [f.status for f in fits()] == ["active"]


def test_a_new_active_fit_retires_the_previous_one(app, lamps):
    shop(app, lamps, 40)
    first = fit_context_ranker_from_logs()
    second = fit_context_ranker_from_logs()
    assert [(f.id, f.status) for f in fits()] == [(first.id, "retired"), (second.id, "active")]


def test_too_few_pairs_are_refused_and_leave_the_active_fit_serving(app, lamps):
    shop(app, lamps, 40)
    active = fit_context_ranker_from_logs()
    app.config["CONTEXT_FIT_MAX_PAGES"] = 3  # the newest three searches: 21 pairs at most
    refused = fit_context_ranker_from_logs()
    assert refused.status == "refused" and refused.weights == {}
    assert "too few pairs" in refused.metrics["refused"]
    assert refused.metrics["searches"] == 3 and refused.metrics["newest_search_id"] == 40
    assert [(f.id, f.status) for f in fits()] == [(active.id, "active"), (refused.id, "refused")]


def test_no_feedback_at_all_is_refused_without_a_click_model(app, lamps):
    for _ in range(3):
        app.test_client().get("/api/search", query_string={"q": QUERY})
    row = fit_context_ranker_from_logs()
    assert row.status == "refused" and row.metrics["pages"] == 0 and row.metrics["searches"] == 3
    assert row.metrics["propensity"]["model"].startswith("1/k")


def test_the_read_is_bounded_newest_first_and_chunked(app, lamps, monkeypatch):
    pages = shop(app, lamps, 12)
    monkeypatch.setattr(context_fit, "CHUNK", 5)
    calls = []
    log = read_logged_pages(days=1, max_pages=11, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(5, 11), (10, 11), (11, 11)]
    newest = [p["search_id"] for p in pages][::-1][:11]
    assert sorted(p.key for p in log.pages) == sorted(newest) and log.newest_search_id == newest[0]
    page = next(p for p in log.pages if p.key == newest[0])
    assert page.features.shape == (8, 12) and list(page.positions) == list(range(1, 9))
    assert sorted(page.gains.tolist())[:7] == [0] * 7 and page.gains.max() in (1, 3)


def test_rows_without_every_feature_and_searches_outside_the_window_are_left_out(app, lamps):
    pages = shop(app, lamps, 3)
    first = db.session.scalar(select(Impression).where(Impression.search_id == pages[0]["search_id"]).limit(1))
    first.features = {k: v for k, v in first.features.items() if k != "trending"}
    last = db.session.get(SearchQuery, pages[-1]["search_id"])
    last.created_at = utcnow() - timedelta(days=30)
    db.session.commit()
    log = read_logged_pages(days=14, max_pages=100)
    assert log.searches == 2 and log.skipped_rows == 1
    assert sorted(p.key for p in log.pages) == sorted(p["search_id"] for p in pages[:2])


def test_the_fit_job_records_progress_and_result_and_runs_once(app, lamps):
    shop(app, lamps, 40)
    job = Job(kind="context_fit", status="queued", params={"trigger": "test"})
    db.session.add(job)
    db.session.commit()
    result = run_context_fit_job(job.id)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "succeeded" and job.progress == 1.0 and job.result == result
    assert result["status"] == "active" and job.message == f"ranker fit {result['fit_id']}: active"
    assert result["holdout_accuracy"] > result["holdout_accuracy_relevance_only"]
    assert run_context_fit_job(job.id) is None  # a redelivery of finished work
    assert len(fits()) == 1


def test_beat_fits_only_when_searches_arrived_since_the_last_fit(app, lamps):
    shop(app, lamps, 40)
    assert fit_context.name == "ranking.fit_context"
    first = fit_context()  # the task itself, as beat sends it: no job id
    assert first["fitted"] and first["status"] == "active", first
    again = scheduled_context_fit()
    assert again == {"fitted": False, "reason": f"no search since fit {first['fit_id']}"}
    shop(app, lamps, 1, seed=9)
    assert scheduled_context_fit()["fitted"]
    assert db.session.scalar(select(func.count(Job.id))) == 0  # beat's fits are on the history, not the jobs list


def test_cli_fit_prints_metrics_and_weights_and_show_lists_the_history(app, lamps, runner):
    shop(app, lamps, 40)
    result = runner.invoke(args=["ranker", "fit"])
    assert result.exit_code == 0, result.output
    assert "(active)" in result.output and "holdout_accuracy:" in result.output
    assert "freshness" in result.output and "Active: web workers pick it up" in result.output
    shown = runner.invoke(args=["ranker", "show"])
    assert shown.exit_code == 0 and "fit 1 (active)" in shown.output and "recent fits:" in shown.output


def test_flagged_feedback_teaches_the_fit_nothing(app, lamps):
    pages = shop(app, lamps, 4)
    db.session.execute(update(Event).values(flagged=True))  # as webapp.services.feedback_trust marks a flood
    db.session.commit()
    log = read_logged_pages(days=1, max_pages=100)
    assert log.searches == len(pages) and log.pages == []  # every page reads as unclicked: nothing to learn
    assert not any(clicked.any() for clicked in log.clicked)
