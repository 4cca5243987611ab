"""An A/B experiment end to end, in a real browser (Debian chromium through Playwright) against
real gunicorn: an admin signs in, creates an experiment between two model versions, starts
it; the shopper simulator sends a crowd through the JSON API; the dashboard then reads a
result with intervals and a verdict. Screenshots of the dashboard and the storefront go to
test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

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
from webapp.models import ExperimentAssignment, ExperimentVariant, Impression, Product, SearchQuery

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "ab-admin@example.com", "a long browser test password"
SESSIONS = 300
# Six products per kind; a query per kind. Titles carry the query's words, so words find them.
KINDS = {
    "kitchen towels": ["Cotton Kitchen Towels Set", "Microfiber Kitchen Towels", "Linen Kitchen Tea Towels",
                       "Waffle Kitchen Towels", "Striped Kitchen Towels", "Bar Mop Kitchen Towels"],
    "wireless headphones": ["Wireless Over Ear Headphones", "Wireless Noise Cancelling Headphones",
                            "Wireless Sport Headphones", "Wireless Kids Headphones", "Wireless Gaming Headphones",
                            "Wireless Foldable Headphones"],
    "coffee mug": ["Ceramic Coffee Mug", "Travel Coffee Mug", "Insulated Coffee Mug", "Glass Coffee Mug",
                   "Enamel Camping Coffee Mug", "Large Coffee Mug"],
    "yoga mat": ["Non Slip Yoga Mat", "Thick Yoga Mat", "Travel Yoga Mat", "Cork Yoga Mat", "Kids Yoga Mat",
                 "Printed Yoga Mat"],
    "water bottle": ["Steel Water Bottle", "Kids Water Bottle", "Glass Water Bottle", "Collapsible Water Bottle",
                     "Insulated Water Bottle", "Sport Water Bottle"],
    "desk lamp": ["LED Desk Lamp", "Clamp Desk Lamp", "Dimmable Desk Lamp", "Wireless Charging Desk Lamp",
                  "Vintage Desk Lamp", "Architect Desk Lamp"],
    "hiking socks": ["Wool Hiking Socks", "Cushioned Hiking Socks", "Ankle Hiking Socks", "Kids Hiking Socks",
                     "Merino Hiking Socks", "Crew Hiking Socks"],
    "cutting board": ["Bamboo Cutting Board", "Plastic Cutting Board Set", "Walnut Cutting Board",
                      "Marble Cutting Board", "Large Cutting Board", "Flexible Cutting Board Mats"],
}  # fmt: skip


def _write_data(directory: Path) -> tuple[Path, Path, Path]:
    """The catalog (JSON Lines), the queries (qid<TAB>text) and graded TREC qrels over it."""
    products, queries, qrels, n = [], [], [], 0
    for q, (query, titles) in enumerate(KINDS.items(), start=1):
        queries.append(f"q{q}\t{query}")
        for rank, title in enumerate(titles):
            n += 1
            external_id = f"AB{n:03d}"
            products.append(
                {
                    "external_id": external_id,
                    "title": title,
                    "brand": ["Acme", "Northwind", "Globex"][n % 3],
                    "description": f"A dependable choice for {query}.",
                    "price": round(8 + n * 1.5, 2),
                    "rating": round(3.5 + (n % 3) * 0.5, 1),
                    "rating_count": 10 * n,
                }
            )
            qrels.append(f"q{q} 0 {external_id} {3 if rank < 2 else (2 if rank < 4 else 1)}")
    catalog = directory / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(p) + "\n" for p in products))
    (directory / "queries.tsv").write_text("\n".join(queries) + "\n")
    (directory / "qrels.txt").write_text("\n".join(qrels) + "\n")
    return catalog, directory / "queries.tsv", directory / "qrels.txt"


def _flask(env: dict, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "webapp", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build_versions(db_url: str, instance: Path) -> list[int]:
    """Two ready model versions from the tiny test model, built in process; the first is activated."""
    from tests.unit.serving_fixtures import build_version_dir
    from webapp.services.model_versions import activate_version, create_version
    from webapp.services.search_index import product_card

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_DIR": str(instance)})
    with app.app_context():
        cards = [product_card(p) for p in db.session.scalars(select(Product))]
        ids = []
        for name, mode in (("baseline", "rrf"), ("challenger", "dense")):
            version = create_version(f"tiny {name}", retrieval_mode=mode)
            build_version_dir(version.artifact_path, cards, retrieval_mode=mode)
            version.status = "ready"
            db.session.commit()
            ids.append(version.id)
        activate_version(ids[0])
        db.session.remove()
        db.engine.dispose()
    return ids


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[dict]:
    """A migrated instance: catalog, two model versions, an admin account; real gunicorn on a free port."""
    instance = tmp_path_factory.mktemp("ab")
    db_url = f"sqlite:///{instance / 'kairos.db'}"
    env = {
        **os.environ,
        "KAIROS_INSTANCE_DIR": str(instance),
        "DATABASE_URL": db_url,
        "HF_HUB_OFFLINE": "1",
        "GUNICORN_WORKERS": "2",
        "KAIROS_ENCODER_VARIANT": "fp32",  # the tiny test model ships no int8 file
        # One address sends the whole crowd here; the public per-address limit is for real shoppers.
        "KAIROS_IP_RATE_LIMIT": "1000000 per minute",
        "KAIROS_SEARCH_RATE_LIMIT": "1000000 per minute",
        "KAIROS_EVENTS_RATE_LIMIT": "1000000 per minute",
    }
    env.pop("KAIROS_TEST_DATABASE_URL", None)
    catalog, queries, qrels = _write_data(instance)
    _flask(env, "db", "upgrade")
    _flask(env, "catalog", "import", str(catalog))
    _flask(env, "admin", "create", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    versions = _build_versions(db_url, instance)
    port = _free_port()
    log = instance / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "webapp:create_app()"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/api/health", proc, log)
        yield {"base": base, "db_url": db_url, "instance": instance, "env": env, "versions": versions,
               "queries": queries, "qrels": qrels, "log": log}  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def page(lab):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith(lab["base"]) else route.abort()
        )
        page = context.new_page()
        page.set_default_timeout(45_000)
        page.on("dialog", lambda dialog: dialog.accept())  # the console's "are you sure?" confirms
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_for_variants(base: str, seconds: float = 20) -> None:
    """Searches until both gunicorn workers serve the experiment (each loads the variants' versions itself)."""
    deadline = time.monotonic() + seconds
    rankers: set[str] = set()
    while time.monotonic() < deadline and not {"rrf", "dense"} <= {r.split(":")[0] for r in rankers}:
        for _ in range(8):  # fresh visitors land in both variants and on both workers
            rankers.add(requests.get(f"{base}/api/search", params={"q": "yoga mat"}, timeout=10).json()["ranker"])
        time.sleep(0.5)
    assert {"rrf", "dense"} <= {r.split(":")[0] for r in rankers}, rankers


def test_experiment_from_creation_to_a_verdict(page, lab):
    base, (v1, v2) = lab["base"], lab["versions"]
    started = time.monotonic()
    page.goto(f"{base}/admin/experiments")
    page.wait_for_url("**/admin/login**")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/experiments")
    page.get_by_role("link", name="New experiment").click()
    page.wait_for_url("**/admin/experiments/new")
    page.locator("input[name=name]").fill("Dense challenger against RRF")
    page.locator("textarea[name=description]").fill("Browser test: tiny model versions, simulated shoppers.")
    for i, (name, version, mode) in enumerate((("rrf baseline", v1, "rrf"), ("dense challenger", v2, "dense"))):
        page.locator(f"input[name=variant-{i}-name]").fill(name)
        page.locator(f"select[name=variant-{i}-version]").select_option(str(version))
        page.locator(f"select[name=variant-{i}-mode]").select_option(mode)
        page.locator(f"input[name=variant-{i}-share]").fill("50")
    _shot(page, "ab-experiment-form")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_url(re.compile(r".*/admin/experiments/\d+$"))
    assert "draft" in page.locator("h1 .badge").inner_text()
    page.get_by_role("button", name="Start").click()
    page.wait_for_load_state()
    assert page.locator("h1 .badge").inner_text() == "running"
    dashboard = page.url

    _wait_for_variants(base)
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "webapp", "simulate", "--base-url", base, "--sessions", str(SESSIONS),
         "--queries", str(lab["queries"]), "--qrels", str(lab["qrels"]), "--workers", "4", "--seed", "3"],
        cwd=ROOT, env=lab["env"], capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, f"simulate failed:\n{done.stdout}\n{done.stderr}"
    assert f"sessions {SESSIONS}," in done.stdout and "errors 0" in done.stdout, done.stdout

    page.goto(dashboard)
    page.get_by_role("button", name="Snapshot now").click()
    page.wait_for_load_state()
    page.goto(dashboard)  # a plain reload of the dashboard, as an analyst checking in would
    verdict = page.locator(".verdict-label").first.inner_text()
    assert verdict in ("dense challenger wins", "rrf baseline wins", "No significant difference yet"), verdict
    numbers = page.locator(".verdict-numbers").first.inner_text()
    # The primary metric is clicks per search: a count per search, shown as a number, not a percentage.
    assert numbers.startswith("Clicks per search: "), numbers
    assert re.search(r"difference [+-][\d.]+ \[[^\]]+\], lift [+-][\d.]+% \[[^\]]+\]", numbers), numbers
    assert "always-valid p = " in numbers
    share = page.locator("#metric-clicked_search_rate tbody tr").first.locator("td").nth(1).inner_text()
    assert re.fullmatch(r"\d+\.\d\d%", share) and float(share[:-1]) <= 100, share
    # Revenue's difference interval is in proportion to the variants' own intervals.
    revenue = [r.locator("td").all_inner_texts() for r in page.locator("#metric-revenue_per_visitor tbody tr").all()]

    def half(interval: str) -> float:
        if "∞" in interval:
            return float("inf")
        low, high = (
            float(x.replace("$", "").replace(",", "").replace("+", "")) for x in interval.strip("[]").split(", ")
        )
        return (high - low) / 2

    implied = (half(revenue[0][2]) ** 2 + half(revenue[1][2]) ** 2) ** 0.5
    if implied > 0:  # somebody bought something
        assert half(revenue[1][4]) < 3 * implied, revenue
    visitors = [int(t) for t in page.locator("table.variants tbody tr td:nth-child(5)").all_inner_texts()]
    assert len(visitors) == 2 and min(visitors) >= 100, visitors  # the simulator's crowd, split in two
    assert page.locator(".srm-warning").count() == 0
    page.locator("canvas[data-chart='chart-click_through_rate']").wait_for()
    page.wait_for_function("document.querySelector(\"canvas[data-chart='chart-click_through_rate']\").width > 0")
    _shot(page, "ab-dashboard")

    page.goto(f"{base}/")
    box = page.get_by_role("searchbox", name="Search products")
    box.fill("coffee mug")
    box.press("Enter")
    page.wait_for_url("**/search?**")
    page.locator(".results .card").first.wait_for()
    _shot(page, "ab-storefront")
    print(f"\nA/B browser test: {verdict!r}; {numbers}; visitors {visitors}; {time.monotonic() - started:.1f} s")
    print(done.stdout)

    app = create_app({"SQLALCHEMY_DATABASE_URI": lab["db_url"], "INSTANCE_DIR": str(lab["instance"])})
    with app.app_context():
        variants = {v.id: v for v in db.session.scalars(select(ExperimentVariant))}
        rankers = dict(
            db.session.execute(
                select(SearchQuery.variant_id, func.min(Impression.ranker))
                .join(Impression, Impression.search_id == SearchQuery.id)
                .where(SearchQuery.variant_id.is_not(None))
                .group_by(SearchQuery.variant_id)
            ).all()
        )
        assert {variants[k].name: r for k, r in rankers.items()} == {
            "rrf baseline": f"rrf:v{v1}",
            "dense challenger": f"dense:v{v2}",
        }
        attributed = db.session.scalar(select(func.count()).where(SearchQuery.variant_id.is_not(None)))
        total = db.session.scalar(select(func.count()).select_from(SearchQuery).where(SearchQuery.source == "api"))
        assert attributed >= 0.9 * total, (attributed, total)
        assigned = db.session.scalar(select(func.count()).select_from(ExperimentAssignment))
        assert assigned >= SESSIONS
        db.session.remove()
        db.engine.dispose()
