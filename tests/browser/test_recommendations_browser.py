"""A shopper in a real browser opens a product page, sees both recommendation lists, follows one:
the click is stored against that list and counted on the admin's Recommendations page
(real gunicorn, chromium through Playwright)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.browser.test_storefront_browser import BIN, ROOT, _wait_until_up, _write_catalog
from tests.browser.test_storefront_browser import browser as browser  # noqa: F401  (the module's chromium)
from webapp import create_app
from webapp.extensions import db
from webapp.models import Event, RecommendationItem, RecommendationList
from webapp.services.admin_users import create_admin

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"
PORT = int(os.environ.get("KAIROS_RECOMMEND_BROWSER_PORT", "8731"))


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[dict]:
    instance = tmp_path_factory.mktemp("recommend-shop")
    db_url = f"sqlite:///{instance / 'kairos.db'}"
    env = {**os.environ, "KAIROS_INSTANCE_DIR": str(instance), "DATABASE_URL": db_url, "HF_HUB_OFFLINE": "1"}
    env["GUNICORN_WORKERS"] = "2"
    env.pop("KAIROS_TEST_DATABASE_URL", None)
    for step in (["db", "upgrade"], ["catalog", "import", str(_write_catalog(instance / "catalog.ndjson"))]):
        done = subprocess.run(
            [str(BIN / "flask"), "--app", "webapp", *step],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"flask {' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"
    log = instance / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{PORT}",
                "webapp:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{PORT}"
    try:
        _wait_until_up(f"{base}/api/health", proc, log)
        yield {"base": base, "db_url": db_url, "instance": instance}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture
def page(browser, shop):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(shop["base"]) else route.abort()
    )
    page = context.new_page()
    page.set_default_timeout(45_000)
    yield page
    context.close()


def test_product_page_lists_and_a_recommended_click_is_stored(page, shop):
    page.goto(f"{shop['base']}/product/B001")
    similar = page.locator('section[data-list="similar"]')
    together = page.locator('section[data-list="bought_together"]')
    similar.wait_for()
    assert similar.locator("h2").inner_text() == "Similar products"
    assert together.locator("h2").inner_text() == "Frequently bought together"
    assert similar.locator(".card").count() >= 3 and together.locator(".card").count() >= 1
    rid = int(similar.get_attribute("data-recommendation"))
    second = similar.locator(".card").nth(1)
    title = second.locator(".title").inner_text()
    second.locator(".card-link").click()
    page.wait_for_url("**/product/**")
    assert page.locator("h1").inner_text() == title

    app = create_app({"SQLALCHEMY_DATABASE_URI": shop["db_url"], "INSTANCE_DIR": str(shop["instance"])})
    with app.app_context():
        try:
            listed = db.session.get(RecommendationList, rid)
            assert listed.name == "similar" and listed.context == "product"
            click = db.session.scalar(select(Event).where(Event.recommendation_id == rid))
            assert click is not None and (click.type, click.position) == ("click", 2)
            shown = db.session.scalar(
                select(RecommendationItem.product_id).where(
                    RecommendationItem.recommendation_id == rid, RecommendationItem.position == 2
                )
            )
            assert shown == click.product_id
            create_admin("analyst@example.com", PASSWORD, "analyst")
        finally:
            db.session.remove()
            db.engine.dispose()

    # The admin's Recommendations page counts it.
    page.goto(f"{shop['base']}/admin/login")
    page.get_by_label("Email").fill("analyst@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/**")
    page.goto(f"{shop['base']}/admin/recommendations")
    row = page.locator('#recommendation-stats tr[data-list="similar"][data-day="all"]')
    assert row.locator("td.clicks").inner_text() == "1"
