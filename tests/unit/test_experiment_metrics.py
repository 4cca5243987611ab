"""Per-visitor experiment data from the database (webapp.services.experiment_metrics)."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from sqlalchemy import update

from engine.experiments.metrics import FIELDS, MetricMoments
from webapp.extensions import db
from webapp.models import (
    Event,
    Experiment,
    ExperimentAssignment,
    ExperimentVariant,
    Impression,
    SearchQuery,
    Visitor,
)
from webapp.services.experiment_metrics import experiment_report, load_experiment_data

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute)


@pytest.fixture
def experiment(app, make_product):
    """Two experiments' worth of rows; only experiment X's qualifying rows may count (see comments)."""
    p1, p2, p3 = (make_product(external_id=f"P{i}") for i in (1, 2, 3))
    for vid in ("a1", "a2", "b1", "b2", "b3", "o1"):
        db.session.add(Visitor(id=vid))
    x = Experiment(name="X", salt="sx", status="running")
    y = Experiment(name="Y", salt="sy", status="running")
    db.session.add_all([x, y])
    db.session.flush()
    va = ExperimentVariant(experiment_id=x.id, name="A", is_control=True, traffic_share=0.5)
    vb = ExperimentVariant(experiment_id=x.id, name="B", is_control=False, traffic_share=0.5)
    vy = ExperimentVariant(experiment_id=y.id, name="Y1", is_control=True, traffic_share=1.0)
    db.session.add_all([va, vb, vy])
    db.session.flush()
    for visitor, variant, exposed in (
        ("a1", va, at(D1, 9)),
        ("a2", va, at(D3, 12)),
        ("b1", vb, at(D1, 12)),
        ("b2", vb, at(D2, 15)),
        ("b3", vb, at(D2, 16)),
    ):  # b3 never searched after
        db.session.add(
            ExperimentAssignment(experiment_id=x.id, variant_id=variant.id, visitor_id=visitor, exposed_at=exposed)
        )
    db.session.add(ExperimentAssignment(experiment_id=y.id, variant_id=vy.id, visitor_id="b1", exposed_at=at(D1, 1)))

    def search(
        visitor: str, variant: ExperimentVariant | None, when: datetime, results: int, ms: float, shown=(p1, p2, p3)
    ) -> SearchQuery:
        query = SearchQuery(
            visitor_id=visitor,
            text="q",
            normalized="q",
            result_count=results,
            latency_ms=ms,
            variant_id=variant.id if variant else None,
            created_at=when,
        )
        db.session.add(query)
        db.session.flush()
        db.session.add_all(Impression(search_id=query.id, product_id=p.id, position=i + 1) for i, p in enumerate(shown))
        return query

    def event(
        kind: str,
        visitor: str,
        query: SearchQuery,
        product,
        position: int | None,
        when: datetime,
        value: float | None = None,
    ) -> None:
        db.session.add(
            Event(
                type=kind,
                visitor_id=visitor,
                product_id=product.id,
                search_id=query.id,
                position=position,
                value=value,
                created_at=when,
            )
        )

    s1 = search("a1", va, at(D1, 9), 5, 10.0)  # at the exposure instant: counts
    event("click", "a1", s1, p1, 1, at(D1, 9, 1))
    event("click", "a1", s1, p3, 3, at(D2, 8))  # a day later: counts on D2, the search was clicked on D1
    event("add_to_cart", "a1", s1, p3, 3, at(D2, 8, 1))
    event("purchase", "a1", s1, p3, 3, at(D2, 8, 2), value=25.0)
    search("a1", va, at(D1, 10), 0, 30.0, shown=())  # a zero-result search
    s0 = search("a1", va, at(D1, 8), 5, 99.0)  # before exposure: excluded, with its click
    event("click", "a1", s0, p1, 1, at(D1, 8, 1))
    search("a1", None, at(D1, 11), 5, 99.0)  # served outside any experiment: excluded
    s3 = search("a2", va, at(D3, 12), 4, 20.0)
    event("click", "a2", s3, p1, None, at(D3, 12, 5))  # a click without a position: no reciprocal rank
    s4 = search("b1", vb, at(D1, 12), 3, 50.0)
    event("click", "b1", s4, p2, 2, at(D1, 12, 1))
    event("click", "b1", s4, p2, 2, at(D1, 12, 2))
    event("purchase", "b1", s4, p2, 2, at(D1, 12, 3), value=10.0)
    event("click", "o1", s4, p2, 2, at(D1, 12, 4))  # someone else's event on b1's search: excluded
    search("b1", vy, at(D2, 13), 3, 99.0)  # served under experiment Y: excluded from X
    search("b2", vb, at(D2, 15), 0, 5.0, shown=())
    search("o1", va, at(D1, 13), 3, 99.0)  # never assigned to X: excluded
    db.session.commit()
    return x, va, vb


def test_per_visitor_arrays(experiment):
    x, va, vb = experiment
    data = load_experiment_data(x.id)
    assert [v.key for v in data.variants] == [va.id, vb.id]
    a, b = data.visitors[va.id], data.visitors[vb.id]
    assert a.visitor_ids == ("a1", "a2") and b.visitor_ids == ("b1", "b2", "b3")
    expected_a = {
        "searches": [2, 1],
        "clicks": [2, 1],
        "clicked_searches": [1, 1],
        "ranked_clicks": [2, 0],
        "reciprocal_rank_sum": [1 + 1 / 3, 0],
        "add_to_carts": [1, 0],
        "purchases": [1, 0],
        "revenue": [25.0, 0],
        "zero_result_searches": [1, 0],
        "latency_ms_sum": [40.0, 20.0],
    }
    expected_b = {
        "searches": [1, 1, 0],
        "clicks": [2, 0, 0],
        "clicked_searches": [1, 0, 0],
        "ranked_clicks": [2, 0, 0],
        "reciprocal_rank_sum": [1.0, 0, 0],
        "add_to_carts": [0, 0, 0],
        "purchases": [1, 0, 0],
        "revenue": [10.0, 0, 0],
        "zero_result_searches": [0, 1, 0],
        "latency_ms_sum": [50.0, 5.0, 0],
    }
    for name in FIELDS:
        np.testing.assert_allclose(a.column(name), expected_a[name], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(b.column(name), expected_b[name], rtol=1e-12, err_msg=name)


def moments(n, sx, sy, sxx, syy, sxy) -> dict:
    return MetricMoments(n, sx, sy, sxx, syy, sxy).to_dict()


def test_daily_cumulative_series(experiment):
    x, va, vb = experiment
    data = load_experiment_data(x.id)
    assert data.days == [D1, D2, D3]
    ctr = [
        (look[va.id]["click_through_rate"].to_dict(), look[vb.id]["click_through_rate"].to_dict())
        for look in data.looks
    ]
    # D1: a1 has 2 searches and 1 click so far; b1 1 search and 2 clicks. D2: a1's late click, b2 and b3
    # join (b3 with nothing). D3: a2 joins with 1 search and 1 click.
    assert ctr == [
        (moments(1, 2, 1, 4, 1, 2), moments(1, 1, 2, 1, 4, 2)),
        (moments(1, 2, 2, 4, 4, 4), moments(3, 2, 2, 2, 4, 2)),
        (moments(2, 3, 3, 5, 5, 5), moments(3, 2, 2, 2, 4, 2)),
    ]
    revenue = [
        (look[va.id]["revenue_per_visitor"].to_dict(), look[vb.id]["revenue_per_visitor"].to_dict())
        for look in data.looks
    ]
    assert revenue == [
        (moments(1, 1, 0, 1, 0, 0), moments(1, 1, 10, 1, 100, 10)),
        (moments(1, 1, 25, 1, 625, 25), moments(3, 3, 10, 3, 100, 10)),
        (moments(2, 2, 25, 2, 625, 25), moments(3, 3, 10, 3, 100, 10)),
    ]
    mrr = [look[va.id]["mean_reciprocal_rank"].to_dict() for look in data.looks]
    assert mrr[0] == moments(1, 1, 1, 1, 1, 1)
    assert mrr[2] == pytest.approx(moments(2, 2, 4 / 3, 4, 16 / 9, 8 / 3))
    clicked = [(look[va.id]["zero_result_rate"].sy, look[vb.id]["zero_result_rate"].sy) for look in data.looks]
    assert clicked == [(1, 0), (1, 1), (1, 1)]
    # The last look is the whole run.
    last = data.looks[-1][va.id]["mean_latency_ms"]
    assert (last.sx, last.sy) == (3, 60.0)


def test_report_from_the_database(experiment):
    x, va, vb = experiment
    report = experiment_report(x)
    assert [v.visitors for v in report.variants] == [2, 3]
    assert report.control_key == va.id and report.sequential
    (treatment,) = report.treatments
    assert treatment.key == vb.id and treatment.verdict.outcome == "not_enough_data"
    assert len(treatment.series["click_through_rate"]) == 3
    assert report.variants[1].metrics["revenue_per_visitor"].value == pytest.approx(10 / 3)


def test_an_experiment_without_visitors(app):
    x = Experiment(name="empty", salt="s")
    db.session.add(x)
    db.session.flush()
    db.session.add_all(
        [
            ExperimentVariant(experiment_id=x.id, name="A", is_control=True, traffic_share=0.5),
            ExperimentVariant(experiment_id=x.id, name="B", traffic_share=0.5),
        ]
    )
    db.session.commit()
    data = load_experiment_data(x.id)
    assert data.days == [] and data.looks == [] and all(len(v) == 0 for v in data.visitors.values())
    report = experiment_report(x, data)
    assert report.treatments[0].verdict.outcome == "not_enough_data"
    assert not report.srm.flagged


def test_flagged_feedback_is_left_out(experiment):
    x, va, vb = experiment
    db.session.execute(update(Event).where(Event.visitor_id == "b1", Event.type == "purchase").values(flagged=True))
    db.session.commit()
    b = load_experiment_data(x.id).visitors[vb.id]
    np.testing.assert_allclose(b.column("purchases"), [0, 0, 0])
    np.testing.assert_allclose(b.column("revenue"), [0, 0, 0])
    np.testing.assert_allclose(b.column("clicks"), [2, 0, 0])  # b1's own clicks are not flagged
