"""The experiments area of the admin (webapp.admin.experiments, webapp.services.experiment_dashboard):
pages for both roles, controls for admins only, CSRF on every form, and a dashboard that reads right."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from webapp.extensions import db
from webapp.models import Event, Experiment, ExperimentAssignment, ModelVersion, SearchQuery, Visitor, utcnow
from webapp.services.experiment_dashboard import fmt_diff, fmt_interval, fmt_p, fmt_value
from webapp.services.experiment_snapshots import take_snapshot
from webapp.services.experiments import VariantSpec, create_experiment, start_experiment, variants_of

FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
CONTROLS = ("start", "pause", "resume", "stop", "promote", "snapshot")


@pytest.fixture(autouse=True)
def _clear_winners(app):
    """drop_all cannot untie experiments.winner_variant_id on SQLite (no ALTER): untie it first."""
    yield
    db.session.rollback()
    db.session.execute(update(Experiment).values(winner_variant_id=None))
    db.session.commit()


def lexical_experiment(name: str = "words vs words", start: bool = False, sequential: bool = True) -> Experiment:
    experiment = create_experiment(
        name,
        [VariantSpec("control", 0.5, None, None, True), VariantSpec("treatment", 0.5, None, "lexical")],
        sequential=sequential,
    )
    return start_experiment(experiment.id) if start else experiment


def fill(experiment: Experiment, product_id: int, visitors: tuple[int, int], ctr: tuple[float, float]) -> None:
    """Visitors per variant, each with four searches clicked with the variant's probability (seeded)."""
    rng = np.random.default_rng(7)
    now = utcnow()
    for variant, count, rate in zip(variants_of(experiment.id), visitors, ctr, strict=True):
        ids = [f"{variant.name}-{n}" for n in range(count)]
        db.session.execute(insert(Visitor), [{"id": v} for v in ids])
        db.session.execute(
            insert(ExperimentAssignment),
            [
                {"experiment_id": experiment.id, "variant_id": variant.id, "visitor_id": v, "exposed_at": now}
                for v in ids
            ],
        )
        for visitor in ids:
            for _ in range(4):
                query = SearchQuery(
                    visitor_id=visitor, text="q", normalized="q", result_count=5, latency_ms=10.0,
                    variant_id=variant.id, created_at=now,
                )  # fmt: skip
                db.session.add(query)
                db.session.flush()
                if rng.random() < rate:
                    db.session.add(
                        Event(type="click", visitor_id=visitor, product_id=product_id, search_id=query.id, position=1)
                    )
    db.session.commit()


def fresh(experiment_id: int) -> Experiment:
    db.session.expire_all()
    return db.session.get(Experiment, experiment_id)


def test_formatting():
    assert fmt_value(0.12345, "share") == "12.35%" and fmt_value(3.5, "currency") == "$3.50"
    assert (
        fmt_value(12.34, "ms") == "12.3 ms" and fmt_value(0.5, "score") == "0.500" and fmt_value(None, "share") == "–"
    )
    assert fmt_diff(0.012, "share") == "+1.20 pp" and fmt_diff(-0.5, "currency") == "-$0.50"
    assert fmt_interval(-0.01, 0.02, lambda v: fmt_diff(v, "share")) == "[-1.00 pp, +2.00 pp]"
    assert fmt_value(2.1409, "per_search") == "2.141" and fmt_diff(0.0446, "per_search") == "+0.045"
    assert fmt_interval(float("-inf"), float("inf"), str) == "[−∞, ∞]" and fmt_interval(float("nan"), 1.0, str) == "–"
    assert fmt_p(0.00001) == "< 0.0001" and fmt_p(0.0312) == "0.0312" and fmt_p(float("nan")) == "–"


@pytest.mark.parametrize("role", ["admin", "analyst"])
def test_pages_render_for_both_roles(client, login, role):
    experiment = lexical_experiment(start=True)
    login(role)
    listing = client.get("/admin/experiments").get_data(as_text=True)
    assert experiment.name in listing and "Only one experiment runs at a time" in listing
    assert ("New experiment" in listing) == (role == "admin")
    page = client.get(f"/admin/experiments/{experiment.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Not enough data yet" in html and "Always-valid p" in html
    assert (f'action="/admin/experiments/{experiment.id}/pause"' in html) == (role == "admin")
    assert client.get("/admin/experiments/999").status_code == 404
    assert client.get("/admin/experiments/new").status_code == (200 if role == "admin" else 403)


def test_analysts_cannot_change_experiments(client, login, make_product):
    experiment = lexical_experiment(start=True)
    winner = variants_of(experiment.id)[1]
    login("analyst")
    for action in CONTROLS:
        response = client.post(f"/admin/experiments/{experiment.id}/{action}", data={"variant_id": winner.id})
        assert response.status_code == 403, action
    assert client.post("/admin/experiments/new", data={"name": "x"}).status_code == 403
    after = fresh(experiment.id)
    assert (after.status, after.winner_variant_id) == ("running", None)
    assert db.session.scalars(select(Experiment)).all() == [after]


def test_create_from_the_form(client, login):
    version = ModelVersion(name="candidate", status="ready", retrieval_mode="hybrid")
    db.session.add(version)
    db.session.commit()
    login("admin")
    form = client.get("/admin/experiments/new").get_data(as_text=True)
    assert "v1 candidate" in form and "Mean reciprocal rank of clicks" in form and "lexical (no model)" in form
    response = client.post(
        "/admin/experiments/new",
        data={
            "name": "Dense challenger", "description": "d", "primary_metric": "add_to_cart_rate", "alpha": "0.01",
            "sequential": "on",
            "variant-0-name": "control", "variant-0-version": "lexical", "variant-0-mode": "", "variant-0-share": "25",
            "variant-1-name": "dense", "variant-1-version": str(version.id), "variant-1-mode": "dense",
            "variant-1-share": "75",
            "variant-2-name": "", "variant-2-share": "",
        },
    )  # fmt: skip
    assert response.status_code == 302
    experiment = db.session.scalars(select(Experiment)).one()
    assert response.headers["Location"] == f"/admin/experiments/{experiment.id}"
    assert (experiment.status, experiment.primary_metric, experiment.alpha, experiment.sequential) == (
        "draft",
        "add_to_cart_rate",
        0.01,
        True,
    )
    rows = [(v.name, v.is_control, v.traffic_share, v.model_version_id, v.ranking_config) for v in variants_of(1)]
    assert rows == [("control", True, 0.25, None, {}), ("dense", False, 0.75, version.id, {"retrieval_mode": "dense"})]


def test_form_errors_keep_the_input(client, login):
    login("admin")
    data = {
        "name": "Shares off", "primary_metric": "click_through_rate", "alpha": "0.05",
        "variant-0-name": "a", "variant-0-version": "lexical", "variant-0-share": "50",
        "variant-1-name": "b", "variant-1-version": "lexical", "variant-1-share": "40",
    }  # fmt: skip
    response = client.post("/admin/experiments/new", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "must sum to 100%" in html and 'value="Shares off"' in html
    response = client.post("/admin/experiments/new", data={**data, "variant-1-share": "lots"})
    assert response.status_code == 400 and "is not a number" in response.get_data(as_text=True)
    assert db.session.scalars(select(Experiment)).all() == []


def test_admin_controls_walk_the_lifecycle(client, login):
    experiment = lexical_experiment()
    other = lexical_experiment("other", start=True)
    login("admin")
    page = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    assert "other is running: only one experiment runs at a time." in page
    response = client.post(f"/admin/experiments/{experiment.id}/start", follow_redirects=True)
    assert "only one experiment runs at a time" in response.get_data(as_text=True)
    assert fresh(experiment.id).status == "draft"
    client.post(f"/admin/experiments/{other.id}/stop")
    for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running"), ("snapshot", "running")):
        response = client.post(f"/admin/experiments/{experiment.id}/{action}")
        assert response.status_code == 302 and fresh(experiment.id).status == status, action
    winner = variants_of(experiment.id)[1]
    response = client.post(f"/admin/experiments/{experiment.id}/promote", data={"variant_id": winner.id})
    assert response.status_code == 302
    done = fresh(experiment.id)
    assert (done.status, done.winner_variant_id) == ("stopped", winner.id)
    page = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    assert "Winner promoted: <strong>treatment</strong>" in page and "Promote control" not in page
    assert client.post(f"/admin/experiments/{experiment.id}/promote", data={"variant_id": 999}).status_code == 400


def test_dashboard_reads_a_clear_winner_with_intervals(client, login, make_product):
    product = make_product()
    experiment = lexical_experiment(start=True, sequential=True)
    fill(experiment, product.id, (400, 400), (0.10, 0.30))
    take_snapshot(experiment.id)
    login("analyst")
    html = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    assert "treatment wins" in html and "always-valid p = " in html
    assert "Sample ratio mismatch" not in html
    row = re.search(r"<td>treatment</td>\s*<td class=\"num\">([^<]+)</td><td class=\"nowrap\">(\[[^<]+\])</td>", html)
    assert row, "the primary metric row of the treatment"
    # Clicks per search is a count per search, not a rate: a plain number, never a percentage.
    assert "Clicks per search" in html and "Searches with a click (share)" in html
    assert "<td>control</td>" in html and 'control <span class="badge">control</span>' not in html  # said once
    value = float(row.group(1))
    low, high = (float(x) for x in row.group(2).strip("[]").split(","))
    assert low < value < high and 0.2 < value < 0.4
    diff = re.search(r"difference (\+[\d.]+) \[(\+[\d.]+), (\+[\d.]+)\]", html)
    assert diff and 0 < float(diff.group(2)) < float(diff.group(1)) < float(diff.group(3))
    assert '<span class="finding finding-better">better</span>' in html
    # Charts: one per metric, from the snapshot plus now, one series per variant.
    spec = json.loads(re.search(r'id="chart-click_through_rate">(.*?)</script>', html, re.S).group(1))
    assert spec["labels"][-1] == "now" and len(spec["labels"]) == 2
    assert [s["label"] for s in spec["series"]] == ["control", "treatment"]
    assert 0.05 < spec["series"][0]["data"][-1] < 0.15 and 0.25 < spec["series"][1]["data"][-1] < 0.35  # per search
    share = json.loads(re.search(r'id="chart-clicked_search_rate">(.*?)</script>', html, re.S).group(1))
    assert share["yLabel"] == "% of searches" and 0 < share["series"][1]["data"][-1] <= 100
    assert html.count('<canvas data-chart="chart-') == 8


def test_fixed_horizon_dashboard_says_so(client, login, make_product):
    product = make_product()
    experiment = lexical_experiment(start=True, sequential=False)
    fill(experiment, product.id, (150, 150), (0.2, 0.2))
    login("analyst")
    html = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    assert "fixed-horizon p-value (welch t-test)" in html.lower() and "Always-valid p" not in html
    assert "No significant difference yet" in html or "wins" in html
    assert "Cumulative value at the end of each UTC day" in html


def test_sample_ratio_mismatch_is_a_warning(client, login, make_product):
    product = make_product()
    experiment = lexical_experiment(start=True)
    fill(experiment, product.id, (300, 150), (0.2, 0.2))
    login("admin")
    html = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    assert 'class="flash flash-error srm-warning" role="alert"' in html and "300 / 150" in html
    assert "results not trustworthy" in html


def test_every_experiment_form_carries_a_csrf_token(app, client, login):
    experiment = lexical_experiment(start=True)
    draft = lexical_experiment("draft")
    login("admin")
    app.config["WTF_CSRF_ENABLED"] = True
    forms = 0
    for url in ("/admin/experiments", "/admin/experiments/new", f"/admin/experiments/{experiment.id}",
                f"/admin/experiments/{draft.id}"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 200, url
        for body in FORM.findall(response.get_data(as_text=True)):
            forms += 1
            assert TOKEN.search(body), (url, body[:200])
    assert forms >= 10  # sign out on each page, create, pause, stop, snapshot, promote x2, start, stop
    for action in CONTROLS:
        assert client.post(f"/admin/experiments/{experiment.id}/{action}").status_code == 400, action
    assert client.post("/admin/experiments/new", data={"name": "x"}).status_code == 400
    assert fresh(experiment.id).status == "running"


def test_sequential_lift_intervals_stay_above_minus_100_percent(client, login, make_product):
    product = make_product()
    experiment = lexical_experiment(start=True, sequential=True)
    fill(experiment, product.id, (120, 120), (0.02, 0.03))  # rare clicks: a wide confidence sequence
    login("analyst")
    html = client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    row = re.search(r'class="num">([+-][\d.]+%)</td><td class="nowrap">\[([^,]+), ([^\]]+)\]', html)
    assert row, "the primary metric's lift and its interval"
    assert row.group(2) == "-100.0%" and float(row.group(3).rstrip("%")) > 0
