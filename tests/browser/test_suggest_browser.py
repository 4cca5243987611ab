"""Instant search in a real browser against real gunicorn: typing shows suggestions under the
search box; the keyboard picks a popular query (a results page), a click a product (its page)."""

from __future__ import annotations

import time

import pytest
import requests

# The storefront browser test's fixtures: a small catalog served by gunicorn, Debian chromium.
from tests.browser.test_storefront_browser import _shot, browser, page, shop  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def popular(shop):  # noqa: F811
    """ "kitchen towels" searched by two visitors (each request without cookies is a new one)."""
    for _ in range(2):
        response = requests.get(f"{shop['base']}/api/search", params={"q": "kitchen towels"}, timeout=30)
        assert response.status_code == 200 and response.json()["total"] >= 3
    # Every worker refreshes its suggestions within KAIROS_SUGGEST_REFRESH_SECONDS of a request:
    # ask until a run of answers (spread over the workers) carries the new query.
    deadline, streak = time.monotonic() + 30, 0
    while streak < 6 and time.monotonic() < deadline:
        answer = requests.get(f"{shop['base']}/api/suggest", params={"q": "kitch"}, timeout=30).json()
        streak = streak + 1 if "kitchen towels" in [s["text"] for s in answer["suggestions"]] else 0
        time.sleep(0.2)
    assert streak >= 6, "the popular query never reached the suggestions"


def test_typing_shows_suggestions_and_the_keyboard_picks_one(page, shop, popular):  # noqa: F811
    page.goto(f"{shop['base']}/")
    box = page.get_by_role("searchbox", name="Search products")
    combo = page.locator(".searchbox [role=combobox]")
    listbox = page.get_by_role("listbox", name="Suggestions")
    assert combo.get_attribute("aria-expanded") == "false" and listbox.is_hidden()

    box.press_sequentially("kitch", delay=40)
    listbox.wait_for(state="visible")
    options = listbox.get_by_role("option")
    texts = [option.locator(".text").text_content() for option in options.all()]
    assert texts[0] == "kitchen towels"  # the popular query before any title
    assert "Cotton Kitchen Towels, Set of 6" in texts[1:]
    assert combo.get_attribute("aria-expanded") == "true"
    _shot(page, "suggest-kitch")

    box.press("ArrowDown")
    assert options.first.get_attribute("aria-selected") == "true"
    assert box.get_attribute("aria-activedescendant") == options.first.get_attribute("id")
    box.press("Escape")  # closes the list and keeps what was typed
    assert combo.get_attribute("aria-expanded") == "false" and box.input_value() == "kitch"

    box.press("ArrowDown")  # reopens
    listbox.wait_for(state="visible")
    box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_url("**/search?q=kitchen+towels")
    assert page.locator(".summary").inner_text().endswith("for “kitchen towels”")
    assert "towel" in page.locator(".results .card .title").first.inner_text().lower()


def test_a_typo_still_suggests_and_a_click_opens_the_product(page, shop):  # noqa: F811
    page.goto(f"{shop['base']}/")
    box = page.get_by_role("searchbox", name="Search products")
    box.press_sequentially("bnadsaw", delay=40)  # two letters swapped
    option = page.get_by_role("option", name="Table Top Bandsaw for Metal")
    option.wait_for(state="visible")
    assert option.locator(".kind").text_content() == "Product"
    option.click()
    page.wait_for_url("**/product/**")
    assert page.locator("h1").inner_text() == "Table Top Bandsaw for Metal"
