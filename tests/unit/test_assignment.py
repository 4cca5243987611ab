"""A/B assignment (webapp.services.assignment): deterministic, sticky, recorded at first search."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import event, func, select

import webapp.services.search as search_module
from engine.serving.searcher import SearchRequest
from webapp.extensions import db
from webapp.models import Experiment, ExperimentAssignment, SearchQuery, Visitor
from webapp.services.assignment import (
    LiveExperiment,
    LiveVariant,
    assign,
    bucket,
    record_exposure,
    running_experiment,
    serving_for,
    variant_index,
)
from webapp.services.experiments import VariantSpec, create_experiment, pause_experiment, start_experiment
from webapp.services.search import search_and_log

IDS = [f"visitor-{n:05d}" for n in range(10_000)]


def live(shares: tuple[float, ...], salt: str = "salt-a") -> LiveExperiment:
    variants = tuple(LiveVariant(i + 1, f"v{i}", s, None, "lexical") for i, s in enumerate(shares))
    return LiveExperiment(1, salt, variants)


def lexical_experiment(name: str = "A/A", shares: tuple[float, float] = (0.5, 0.5), start: bool = True) -> Experiment:
    experiment = create_experiment(
        name,
        [
            VariantSpec("control", shares[0], None, "lexical", is_control=True),
            VariantSpec("treatment", shares[1], None, "lexical"),
        ],
    )
    return start_experiment(experiment.id) if start else experiment


def assignments(experiment_id: int) -> list[ExperimentAssignment]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(ExperimentAssignment).where(ExperimentAssignment.experiment_id == experiment_id))
    )


@pytest.fixture
def catalog(make_product):
    for title in ("red running shoes", "blue rain jacket", "wool socks"):
        make_product(title=title)


def test_bucket_is_the_documented_hash():
    digest = hashlib.sha256(b"s1:visitor-1").hexdigest()
    assert bucket("s1", "visitor-1") == int(digest[:15], 16) / 16**15
    assert bucket("s1", "visitor-1") == bucket("s1", "visitor-1")
    assert all(0.0 <= bucket("s", v) < 1.0 for v in IDS[:1000])


def test_variant_index_cuts_cumulative_shares():
    shares = [0.2, 0.3, 0.5]
    assert [variant_index(shares, p) for p in (0.0, 0.1999, 0.2, 0.4999, 0.5, 0.9999)] == [0, 0, 1, 1, 2, 2]
    # Shares summing to a hair under 1 (float rounding): the top of the range still lands in the last variant.
    assert variant_index([0.3333333, 0.3333333, 0.3333333], 0.99999999) == 2


def test_assignment_is_deterministic():
    experiment = live((0.5, 0.5))
    first = [assign(experiment, v).id for v in IDS[:500]]
    again = [assign(live((0.5, 0.5)), v).id for v in IDS[:500]]
    assert first == again and set(first) == {1, 2}


def test_shares_are_respected_over_10k_visitors():
    shares = (0.2, 0.3, 0.5)
    experiment = live(shares)
    counts = np.bincount([assign(experiment, v).id - 1 for v in IDS], minlength=3)
    expected = np.array(shares) * len(IDS)
    # Each count within 4 binomial standard deviations, and a goodness-of-fit test that does not reject.
    sd = np.sqrt(len(IDS) * np.array(shares) * (1 - np.array(shares)))
    assert np.all(np.abs(counts - expected) < 4 * sd), counts
    assert stats.chisquare(counts, expected).pvalue > 0.001


def test_assignments_are_independent_across_salts():
    a, b = live((0.5, 0.5), "salt-a"), live((0.5, 0.5), "salt-b")
    table = np.zeros((2, 2))
    for visitor in IDS:
        table[assign(a, visitor).id - 1, assign(b, visitor).id - 1] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    assert np.all(np.abs(table - len(IDS) / 4) < 4 * np.sqrt(len(IDS) * 0.25 * 0.75)), table
    buckets = np.array([[bucket("salt-a", v), bucket("salt-b", v)] for v in IDS])
    assert abs(np.corrcoef(buckets.T)[0, 1]) < 0.05


def test_exposure_is_recorded_at_the_first_search_only(app, catalog):
    experiment = lexical_experiment()
    visitor = "v-first"
    db.session.add(Visitor(id=visitor))
    db.session.commit()
    assert serving_for(visitor).new_exposure and assignments(experiment.id) == []  # looking records nothing
    first, _ = search_and_log(SearchRequest(text="running shoes"), visitor)
    second, _ = search_and_log(SearchRequest(text="socks"), visitor)
    rows = assignments(experiment.id)
    assert len(rows) == 1 and rows[0].visitor_id == visitor
    assert rows[0].exposed_at == first.created_at  # the exposing search counts in the analysis
    assert first.variant_id == second.variant_id == rows[0].variant_id
    assert rows[0].variant_id == assign(running_experiment(), visitor).id
    assert not serving_for(visitor).new_exposure


def test_the_stored_assignment_is_sticky(app, catalog):
    experiment = lexical_experiment()
    visitor = "v-sticky"
    search_and_log(SearchRequest(text="socks"), visitor)
    row = assignments(experiment.id)[0]
    other = next(v.id for v in running_experiment().variants if v.id != row.variant_id)
    row.variant_id = other  # as if the hash had said otherwise: the record wins
    db.session.commit()
    query, _ = search_and_log(SearchRequest(text="socks"), visitor)
    assert query.variant_id == other and len(assignments(experiment.id)) == 1


def test_nothing_is_attributed_without_a_running_experiment(app, catalog):
    experiment = lexical_experiment(start=False)
    query, _ = search_and_log(SearchRequest(text="socks"), "v-draft")
    assert query.variant_id is None and assignments(experiment.id) == []
    start_experiment(experiment.id)
    pause_experiment(experiment.id)
    query, _ = search_and_log(SearchRequest(text="socks"), "v-paused")
    assert query.variant_id is None and assignments(experiment.id) == []
    query, _ = search_and_log(SearchRequest(text="socks"), None)  # no visitor, no assignment
    assert query.variant_id is None


def test_recording_twice_keeps_one_row_and_the_transaction(app, catalog):
    experiment = lexical_experiment()
    variant_id = running_experiment().variants[0].id
    db.session.add(Visitor(id="v-twice"))
    db.session.commit()
    assert record_exposure(experiment.id, variant_id, "v-twice")
    db.session.commit()
    query = SearchQuery(visitor_id="v-twice", text="x", normalized="x")
    db.session.add(query)
    db.session.flush()
    assert not record_exposure(experiment.id, variant_id, "v-twice")  # the unique constraint answers
    db.session.commit()  # only the savepoint was rolled back: the search row survives
    assert db.session.get(SearchQuery, query.id) is not None
    assert len(assignments(experiment.id)) == 1


def test_concurrent_first_searches_record_one_exposure(app, catalog, monkeypatch):
    experiment = lexical_experiment()
    visitor, threads = "v-race", 6
    search_and_log(SearchRequest(text="socks"), "warm-up")  # the index is built once, before the race
    # The visitor row exists already: this test races the assignment insert, not the visitor's
    # (webapp.visitors.ensure_visitor_row has its own first-request race).
    db.session.add(Visitor(id=visitor))
    db.session.commit()
    barrier = threading.Barrier(threads)
    results: list[int | None] = []
    errors: list[BaseException] = []
    seen: list = []

    def in_step(visitor_id):
        serving = serving_for(visitor_id)
        seen.append(serving)
        barrier.wait(timeout=30)  # every thread has looked and found no assignment before any writes one
        return serving

    monkeypatch.setattr(search_module, "serving_for", in_step)

    def first_search() -> None:
        with app.app_context():
            try:
                query, _ = search_and_log(SearchRequest(text="running shoes"), visitor)
                results.append(query.variant_id)
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)
            finally:
                db.session.remove()

    workers = [threading.Thread(target=first_search) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == [] and len(results) == threads
    assert all(step.new_exposure for step in seen)
    rows = [a for a in assignments(experiment.id) if a.visitor_id == visitor]
    assert len(rows) == 1 and set(results) == {rows[0].variant_id}


def test_a_search_costs_one_assignment_lookup(app, catalog):
    app.config["EXPERIMENT_CACHE_SECONDS"] = 60.0
    lexical_experiment()
    search_and_log(SearchRequest(text="socks"), "v-cost")  # warms the caches
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement.lower())

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            search_and_log(SearchRequest(text="socks"), "v-cost")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert not [s for s in statements if "from experiments" in s or "from experiment_variants" in s]
    lookups = [s for s in statements if "from experiment_assignments" in s]
    assert len(lookups) == 5
    count = db.session.scalar(select(func.count()).select_from(ExperimentAssignment))
    assert count == 1
