"""A shopper in a real browser (Debian chromium through Playwright) against real gunicorn:
search, open a result, add it to the cart; the database must hold the whole feedback trail."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from webapp import create_app
from webapp.extensions import db
from webapp.models import Event, Impression, Product, SearchQuery

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("KAIROS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
BIN = Path(sys.executable).parent

_KINDS = {
    "towel": [
        "Cotton Kitchen Towels, Set of 6",
        "Microfiber Kitchen Towel 12 Pack",
        "Linen Tea Towels for Kitchen",
        "Bath Towel Set, Quick Dry",
        "Waffle Weave Hand Towels",
        "Turkish Beach Towel Oversized",
    ],
    "headphones": [
        "Wireless Bluetooth Headphones Over Ear",
        "Noise Cancelling Headphones with Mic",
        "Kids Headphones Volume Limited",
        "Sport Earbuds Wireless Headphones",
        "Studio Monitor Headphones Wired",
        "Foldable On-Ear Headphones",
    ],
    "other": [
        "Ceramic Coffee Mug 12 oz",
        "LED Desk Lamp Dimmable",
        "Stainless Steel Water Bottle",
        "Cast Iron Skillet 10 inch",
        "Yoga Mat Non Slip",
        "Bamboo Cutting Board",
        "Wool Hiking Socks",
        "USB-C Charging Cable 6 ft",
        "Glass Food Storage Containers",
        "Electric Kettle 1.7 L",
        "Table Top Bandsaw for Metal",
        "Memory Foam Pillow",
        "Garden Hose 50 ft",
        "Wall Clock Silent",
        "Scented Soy Candle",
        "Canvas Tote Bag",
        "Travel Neck Pillow",
        "Digital Kitchen Scale",
    ],
}


def _write_catalog(path: Path) -> Path:
    lines, n = [], 0
    for kind, titles in _KINDS.items():
        for title in titles:
            n += 1
            lines.append(
                json.dumps(
                    {
                        "external_id": f"B{n:03d}",
                        "title": title,
                        "brand": ["Acme", "Northwind", "Globex"][n % 3],
                        "description": f"A dependable {kind} for everyday use.",
                        "price": round(5 + n * 1.75, 2),
                        "rating": round(3.5 + (n % 3) * 0.5, 1),
                        "rating_count": 20 * n,
                        # Never reachable here, so the page must show its placeholder instead.
                        "image_url": f"https://images.invalid/{n}.jpg",
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.25)
    pytest.fail(f"gunicorn did not answer {url} within {seconds}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[dict]:
    """A migrated instance with a small catalog, served by real gunicorn on a free port."""
    instance = tmp_path_factory.mktemp("shop")
    db_url = f"sqlite:///{instance / 'kairos.db'}"
    env = {
        **os.environ,
        "KAIROS_INSTANCE_DIR": str(instance),
        "DATABASE_URL": db_url,
        "HF_HUB_OFFLINE": "1",
        "GUNICORN_WORKERS": "2",
        # Workers build their suggestions at start; the tests' own searches must show up in them soon.
        "KAIROS_SUGGEST_REFRESH_SECONDS": "0.5",
        # Every browser and request here comes from 127.0.0.1 within the hour (the rule: tests/unit/test_suggestions.py).
        "KAIROS_SUGGEST_MIN_ADDRESSES": "1",
        "KAIROS_SUGGEST_MIN_HOURS": "1",
    }
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
    port = _free_port()
    log = instance / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "webapp:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
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


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (scripts/test.sh installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, shop):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Only the shop itself is reachable: outside requests (product images) fail at once, the same
    # offline or online, so the placeholder path is what gets tested.
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(shop["base"]) else route.abort()
    )
    page = context.new_page()
    page.set_default_timeout(45_000)
    yield page
    context.close()


@pytest.fixture
def shop_db(shop):
    app = create_app({"SQLALCHEMY_DATABASE_URI": shop["db_url"], "INSTANCE_DIR": str(shop["instance"])})
    with app.app_context():
        yield db.session
        db.session.remove()
        db.engine.dispose()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _search(page, base: str, text: str) -> None:
    page.goto(f"{base}/")
    box = page.get_by_role("searchbox", name="Search products")
    box.fill(text)
    box.press("Enter")
    page.wait_for_url("**/search?**")


def test_search_click_add_to_cart_is_logged(page, shop, shop_db):
    _search(page, shop["base"], "kitchen towels")
    cards = page.locator(".results .card")
    cards.first.wait_for()
    assert cards.count() >= 3
    assert "towel" in cards.first.locator(".title").inner_text().lower()
    page.locator(".results .card .thumb.broken .placeholder").first.wait_for(state="visible")
    _shot(page, "search-kitchen-towels")

    title = cards.first.locator(".title").inner_text()
    cards.first.locator(".card-link").click()
    page.wait_for_url("**/product/**")
    assert page.locator("h1").inner_text() == title
    assert page.locator(".thumb.large .placeholder").is_visible()
    _shot(page, "product-page")

    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/cart")
    assert page.locator("h1").inner_text() == "Your cart"
    assert page.locator("table.cart tbody tr").first.inner_text().startswith(title)
    assert "Added to your cart." in page.locator(".flash").inner_text()
    _shot(page, "cart")

    search = shop_db.scalars(select(SearchQuery).where(SearchQuery.normalized == "kitchen towels")).one()
    assert search.source == "storefront" and search.result_count >= 3 and search.visitor_id
    impressions = shop_db.scalars(
        select(Impression).where(Impression.search_id == search.id).order_by(Impression.position)
    ).all()
    assert [i.position for i in impressions] == list(range(1, len(impressions) + 1))
    first = shop_db.get(Product, impressions[0].product_id)
    assert first.title == title
    events = shop_db.scalars(select(Event).where(Event.search_id == search.id).order_by(Event.id)).all()
    assert [(e.type, e.product_id, e.position, e.visitor_id) for e in events] == [
        ("click", first.id, 1, search.visitor_id),
        ("add_to_cart", first.id, 1, search.visitor_id),
    ]


def test_misspelled_query_still_finds_headphones(page, shop):
    _search(page, shop["base"], "hedphones")
    titles = page.locator(".results .card .title").all_inner_texts()
    _shot(page, "search-hedphones")
    assert titles, "a one-letter typo must not return nothing"
    assert all("headphones" in t.lower() for t in titles[:3]), titles


def test_gibberish_query_shows_suggestions(page, shop):
    _search(page, shop["base"], "qzxjvwk")
    empty = page.locator(".empty")
    empty.wait_for(state="visible")
    _shot(page, "search-gibberish")
    assert "No products match" in empty.locator("h2").inner_text()
    assert page.locator(".empty .chip").count() >= 1
    assert page.locator(".results .card").count() == 0
