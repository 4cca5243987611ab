"""A shop owner's first run, in a real browser (Debian chromium through Playwright) against real
gunicorn: the overview says whether Celery beat runs and when each schedule runs next; the
storefront shows staff (never shoppers) that a model is building; a refused retrain says why
and what to do, once, without looking failed; a finished build offers to activate its version."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_ab_dashboard import _build_versions, _flask, _write_data
from tests.browser.test_storefront_browser import (
    ARTIFACTS,
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    _free_port,
    _wait_until_up,
)
from webapp import create_app
from webapp.extensions import db
from webapp.models import Job, utcnow
from webapp.services.schedule_runs import BEAT_ROW, SCHEDULES, record_run

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "owner@example.com", "a long first run test password"
REASON = (
    "too little feedback: 2 positive (query, product) pairs from 9 searches in the last 14 days; at least 50 are needed"
)


def _in_db(shop: dict, work) -> object:
    app = create_app({"SQLALCHEMY_DATABASE_URI": shop["db_url"], "INSTANCE_DIR": str(shop["instance"])})
    with app.app_context():
        try:
            return work()
        finally:
            db.session.remove()
            db.engine.dispose()


def _jobs(ready_version: int) -> dict[str, int]:
    rows = {
        "building": Job(kind="build_version", status="running", progress=0.37, message="370 of 1000",
                        params={"version_id": 99}),
        "refused": Job(kind="fine_tune", status="refused", message=REASON, finished_at=utcnow(),
                       result={"refused": REASON, "logs": [REASON],
                               "next_step": "Real traffic makes them. For a demo: .venv/bin/flask --app webapp simulate"}),
        "built": Job(kind="build_version", status="succeeded", progress=1.0, message="980 of 1000",
                     finished_at=utcnow(), params={"version_id": ready_version},
                     result={"version_id": ready_version, "build_seconds": 60.52, "products": 821220}),
    }  # fmt: skip
    db.session.add_all(rows.values())
    db.session.commit()
    return {name: job.id for name, job in rows.items()}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[dict]:
    instance = tmp_path_factory.mktemp("first-run")
    db_url = f"sqlite:///{instance / 'kairos.db'}"
    env = {**os.environ, "KAIROS_INSTANCE_DIR": str(instance), "DATABASE_URL": db_url, "HF_HUB_OFFLINE": "1",
           "GUNICORN_WORKERS": "1", "KAIROS_ENCODER_VARIANT": "fp32"}  # fmt: skip
    env.pop("KAIROS_TEST_DATABASE_URL", None)
    catalog, _queries, _qrels = _write_data(instance)
    _flask(env, "db", "upgrade")
    _flask(env, "catalog", "import", str(catalog))
    _flask(env, "admin", "create", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    _active, ready = _build_versions(db_url, instance)
    port = _free_port()
    log = instance / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "webapp:create_app()"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    shop = {"base": base, "db_url": db_url, "instance": instance, "ready": ready}
    try:
        _wait_until_up(f"{base}/api/health", proc, log)
        shop["jobs"] = _in_db(shop, lambda: _jobs(ready))
        yield shop
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _page(browser, shop):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(shop["base"]) else r.abort())
    page = context.new_page()
    page.set_default_timeout(45_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the console's "are you sure?" confirms
    return context, page


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_first_run_as_a_shop_owner(browser, shop):
    base, jobs = shop["base"], shop["jobs"]
    shopper_context, shopper = _page(browser, shop)
    shopper.goto(f"{base}/")
    assert shopper.locator(".build-note").count() == 0  # shoppers never see the build
    shopper_context.close()

    context, page = _page(browser, shop)
    page.goto(f"{base}/admin/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")

    # The overview: without beat, it says so; once beat ran, when each schedule last ran and runs next.
    schedules = page.locator("#schedules")
    assert "Celery beat has never run" in schedules.inner_text()
    assert schedules.locator("tbody tr").count() == len(SCHEDULES)
    _in_db(shop, lambda: (record_run(BEAT_ROW, "started"), record_run("kairos-context-fit", "fitted: False")))
    page.reload()
    text = schedules.inner_text()
    assert "Celery beat last started" in text and "Celery beat has never run" not in text
    fit = schedules.locator("tr[data-schedule='kairos-context-fit'] td").all_inner_texts()
    assert fit[1] == "15 min" and fit[2] != "never" and fit[3] == "fitted: False" and fit[4] > fit[2]
    snapshots = schedules.locator("tr[data-schedule='kairos-experiment-snapshots'] td").all_inner_texts()
    assert snapshots[1] == "1 h" and snapshots[2] == "never" and snapshots[4] != "once beat starts"
    _shot(page, "admin-overview-schedules")

    # The storefront, signed in: the build's progress for staff.
    page.goto(f"{base}/")
    note = page.locator(".build-note")
    assert note.inner_text().startswith("Search is improving: model v99 building, 37%."), note.inner_text()
    _shot(page, "storefront-build-note")

    # A refused retrain: its own state, the reason once, and the way to get feedback.
    page.goto(f"{base}/admin/jobs/{jobs['refused']}")
    assert page.locator("[data-field=status]").inner_text() == "refused"
    assert page.locator(".st-failed").count() == 0
    refusal = page.locator(".refusal").inner_text()
    assert "Refused, nothing broke:" in refusal and "flask --app webapp simulate" in refusal
    visible = page.locator("#job").inner_text().split("Raw result")[0]
    assert visible.count("too little feedback") == 1, visible
    _shot(page, "job-refused")
    page.goto(f"{base}/admin/jobs?status=refused")
    assert page.locator("tbody .badge").first.inner_text() == "refused"

    # A finished build: done, readable results, and one click to serve its version.
    page.goto(f"{base}/admin/jobs/{jobs['built']}")
    assert "done (1000 of 1000)" == page.locator("[data-field=message]").inner_text()
    rows = dict(
        zip(
            page.locator(".result-table th").all_inner_texts(),
            page.locator(".result-table td").all_inner_texts(),
            strict=True,
        )
    )
    assert rows["build seconds"] == "1 min 1 s" and rows["products"] == "821,220", rows
    page.get_by_role("button", name=f"Activate v{shop['ready']}").click()
    page.wait_for_url(f"{base}/admin/models")
    assert f"Version {shop['ready']} is active" in page.locator(".flashes").inner_text()
    context.close()
