"""A pin saved in the admin's Rules page puts its product first on the storefront, in every worker
of a real gunicorn (two workers, each with its follower), within a second or so."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

# The storefront browser test's fixtures: a small catalog served by gunicorn, Debian chromium.
from tests.browser.test_storefront_browser import BIN, ROOT, _shot, browser, page, shop  # noqa: F401

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "merch@example.com", "a long merchandising password"
PINNED = "B013"  # "Ceramic Coffee Mug 12 oz": no headphones at all


@pytest.fixture(scope="module")
def merchandiser(shop):  # noqa: F811
    env = {**os.environ, "KAIROS_INSTANCE_DIR": str(shop["instance"]), "DATABASE_URL": shop["db_url"]}
    env.pop("KAIROS_TEST_DATABASE_URL", None)
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "webapp", "admin", "create", EMAIL, "--password-stdin"],
        cwd=ROOT,
        env=env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return EMAIL


def _first_titles(page, base: str) -> list[str]:  # noqa: F811
    page.goto(f"{base}/search?q=headphones")
    return page.locator(".results .card h3.title").all_inner_texts()


def test_a_pin_saved_in_the_admin_is_first_on_the_storefront(page, shop, merchandiser):  # noqa: F811
    base = shop["base"]
    assert "Ceramic Coffee Mug 12 oz" not in _first_titles(page, base)
    page.goto(f"{base}/admin/rules")
    page.wait_for_url("**/admin/login**")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/rules")
    page.get_by_role("link", name="New rule").click()
    page.wait_for_url("**/admin/rules/new")
    page.locator("input[name=query]").fill("Headphones")
    page.locator("textarea[name=pins]").fill(f"{PINNED} 1")
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url("**/admin/rules")
    assert "headphones" in page.locator("table.rules").inner_text()
    _shot(page, "rules-saved")
    saved = time.monotonic()
    # Several page loads, spread over both workers: each must serve the pin.
    streak = 0
    while streak < 6 and time.monotonic() - saved < 10:
        titles = _first_titles(page, base)
        streak = streak + 1 if titles and titles[0] == "Ceramic Coffee Mug 12 oz" else 0
    assert streak >= 6, f"the pinned product is not first: {titles[:3]}"
    _shot(page, "pinned-first")
