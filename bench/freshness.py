"""Freshness against the running system: new products, purchase bursts, and what stage 2 costs.

    .venv/bin/python bench/freshness.py [--instance DIR] [--products 20] [--bursts 10]
                                        [--sessions 600] [--requests 300]

One run, on a private copy of the instance (or, without --instance, a fresh demo catalog
served lexical-only), with two gunicorn servers on the same database: A answers with
stage 2 (trending, freshness, personalization), B with it switched off
(KAIROS_CONTEXT_RANKING=0). It measures:

1. product created in the admin -> first in search results (p50/p99; target <= 1 s): an
   admin signs in, creates a product with a unique word in its title, and the word is
   searched on A every 10 ms until the product is in the results;
2. a burst of purchases -> the product's rise for its query (target <= 1 s): simulated
   shoppers first produce feedback (`flask simulate`), the context ranker is fitted on it
   (`flask ranker fit`); then per query three shoppers search it and buy the product shown
   at about position 10, and a new visitor searches it every 10 ms until it ranks higher;
3. the search latency cost of stage 2: p50/p99 of the same queries on A for visitors with a
   history (personalised), on A for new visitors (trending, no profile) and on B (off),
   interleaved round by round so the machine's noise falls on all three alike.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_server import Server, prepare, run_flask, server_env, start_server  # noqa: E402
from bench.load_setup import admin_cookies  # noqa: E402
from bench.search_latency import active_version, copy_instance  # noqa: E402
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402
from engine.evaluation.split import load_split  # noqa: E402

ADMIN = ("freshness@example.com", "freshness bench password 1234")
POLL = 0.01
GIVE_UP = 5.0
TARGET_SECONDS = 1.0
PERSONALIZATION_BUDGET_MS = 3.0


def flask(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return run_flask(env, *args, stdin=stdin)


def admin_session(base: str) -> requests.Session:
    session = requests.Session()
    session.cookies.update(admin_cookies(base, ADMIN))
    return session


def csrf_token(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=30).text).group(1)


def result_ids(session: requests.Session, base: str, query: str) -> list[str]:
    answer = session.get(f"{base}/api/search", params={"q": query}, timeout=30)
    answer.raise_for_status()
    return [hit["product_id"] for hit in answer.json()["results"]]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"p50 {statistics.median(values):7.1f}  p99 {percentile(values, 99):7.1f}  (n={len(values)})"


def new_product_delays(base: str, count: int) -> tuple[list[float], int]:
    """Seconds from the admin's create request to the product's first appearance in search."""
    admin = admin_session(base)
    shopper = requests.Session()
    delays, missed = [], 0
    for _ in range(count):
        word = f"fresh{uuid.uuid4().hex[:10]}"
        external_id = f"FRESH-{word}"
        form = {
            "external_id": external_id,
            "title": f"Desk lamp {word} with warm light",
            "brand": "Freshness Bench",
            "price": "19.99",
            "in_stock": "true",
            "csrf_token": csrf_token(admin, f"{base}/admin/catalog/new"),
        }
        started = time.perf_counter()
        created = admin.post(f"{base}/admin/catalog/new", data=form, timeout=30)
        if created.status_code != 200 or "/admin/catalog/" not in created.url:
            raise SystemExit(f"creating a product failed: HTTP {created.status_code}")
        while external_id not in result_ids(shopper, base, word):
            if time.perf_counter() - started > GIVE_UP:
                missed += 1
                break
            time.sleep(POLL)
        else:
            delays.append(time.perf_counter() - started)
    return delays, missed


def burst_delays(base: str, queries: list[str], rng: random.Random) -> tuple[list[float], list[str]]:
    """Per query: three shoppers buy the product at ~position 10; seconds until it ranks higher."""
    delays, notes = [], []
    for query in queries:
        ranking = result_ids(requests.Session(), base, query)
        if len(ranking) < 12:
            notes.append(f"{query!r}: fewer than 12 results, skipped")
            continue
        target = ranking[rng.randrange(8, 12)]
        before = ranking.index(target)
        buyers = []
        for _ in range(3):
            buyer = requests.Session()
            answer = buyer.get(f"{base}/api/search", params={"q": query}, timeout=30).json()
            shown = {hit["product_id"]: hit["position"] for hit in answer["results"]}
            if target in shown:
                buyers.append((buyer, answer["search_id"], shown[target]))
        started = time.perf_counter()
        for buyer, search_id, position in buyers:
            events = [
                {"type": kind, "product_id": target, "search_id": search_id, "position": position}
                for kind in ("click", "add_to_cart", "purchase")
            ]
            buyer.post(f"{base}/api/events", json={"events": events}, timeout=30).raise_for_status()
        while True:
            ranking = result_ids(requests.Session(), base, query)
            if target in ranking and ranking.index(target) < before:
                delays.append(time.perf_counter() - started)
                notes.append(f"{query!r}: position {before + 1} -> {ranking.index(target) + 1}")
                break
            if time.perf_counter() - started > GIVE_UP:
                notes.append(f"{query!r}: did not rise within {GIVE_UP:.0f} s (position {before + 1})")
                break
            time.sleep(POLL)
    return delays, notes


def shopper_with_history(base: str, queries: list[str], rng: random.Random) -> requests.Session:
    """A visitor who searched and clicked and bought a few things (their profile is not empty)."""
    session = requests.Session()
    for query in rng.sample(queries, 3):
        answer = session.get(f"{base}/api/search", params={"q": query}, timeout=30).json()
        if answer["results"]:
            hit = answer["results"][0]
            events = [
                {"type": kind, "product_id": hit["product_id"], "search_id": answer["search_id"], "position": 1}
                for kind in ("click", "purchase")
            ]
            session.post(f"{base}/api/events", json={"events": events}, timeout=30).raise_for_status()
    return session


def latency_rows(a: Server, b: Server, queries: list[str], requests_each: int, rng: random.Random) -> dict:
    """Interleaved rounds: A personalised, A new visitor, B off; milliseconds per search."""
    known = [shopper_with_history(a.base, queries, rng) for _ in range(8)]
    arms = {"stage 2, personalised": [], "stage 2, new visitor": [], "stage 2 off": []}
    order = [rng.choice(queries) for _ in range(requests_each)]
    for i, query in enumerate(order):
        for label, base, session in (
            ("stage 2, personalised", a.base, known[i % len(known)]),
            ("stage 2, new visitor", a.base, requests.Session()),
            ("stage 2 off", b.base, known[i % len(known)]),
        ):
            started = time.perf_counter()
            answer = session.get(f"{base}/api/search", params={"q": query}, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise SystemExit(f"{label}: HTTP {answer.status_code}")
            arms[label].append(elapsed)
    return arms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=Path, help="an instance with an active model version (hybrid)")
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=600, help="simulated shoppers before the ranker fit")
    parser.add_argument("--requests", type=int, default=300, help="searches per arm in the latency rounds")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    queries = [q.text for q in read_esci_queries(DEMO_JUDGMENTS)]
    train_queries = list(load_split().train)  # the fit learns from shoppers on these: bursts use them too

    with tempfile.TemporaryDirectory(prefix="kairos-fresh-") as tmp:
        instance = Path(tmp) / "instance"
        version = active_version(args.instance) if args.instance else None
        if args.instance:
            copy_instance(args.instance, instance, version, serve_it=True)
        env = server_env(instance)
        prepare(env, import_catalog=args.instance is None)
        flask(env, "admin", "create", ADMIN[0], "--role", "admin", "--password-stdin", stdin=ADMIN[1] + "\n")
        servers = [start_server("stage2", env), start_server("off", {**env, "KAIROS_CONTEXT_RANKING": "0"})]
        try:
            for server in servers:
                server.wait_healthy()
            a, b = servers
            mode = requests.get(f"{a.base}/api/search", params={"q": "lamp"}, timeout=30).json()["ranker"]
            print(f"# Freshness on {'a copy of ' + str(args.instance) if args.instance else 'the demo catalog'}")
            print(f"# stage-1 ranker: {mode}; seed {args.seed}\n")

            delays, missed = new_product_delays(a.base, args.products)
            print("1. product created in the admin -> first in search results (ms)")
            print(
                f"   {summary([d * 1000 for d in delays])}   missed: {missed}   target <= {TARGET_SECONDS * 1000:.0f}\n"
            )

            print(f"   simulating {args.sessions} shoppers on the train queries, then fitting the context ranker...")
            flask(env, "simulate", "--base-url", a.base, "--sessions", str(args.sessions), "--seed", str(args.seed))
            print("   " + flask(env, "ranker", "fit").strip().replace("\n", "\n   ") + "\n")
            time.sleep(3)  # the web workers poll for a new fit every CONTEXT_RANKER_CHECK_SECONDS (2 s)

            delays, notes = burst_delays(a.base, rng.sample(train_queries, args.bursts), rng)
            print("2. burst of purchases (3 shoppers) -> the product ranks higher for its query (ms)")
            print(f"   {summary([d * 1000 for d in delays])}   target <= {TARGET_SECONDS * 1000:.0f}")
            for note in notes:
                print(f"   - {note}")

            arms = latency_rows(a, b, queries, args.requests, rng)
            print("\n3. search latency through gunicorn, interleaved (ms)")
            for label, values in arms.items():
                print(f"   {label:<24} {summary(values)}")
            off = statistics.median(arms["stage 2 off"])
            for label in ("stage 2, personalised", "stage 2, new visitor"):
                added = statistics.median(arms[label]) - off
                print(f"   {label} adds {added:+.1f} ms p50 ({statistics.median(arms[label]) / off:.2f}x)")
            personal = statistics.median(arms["stage 2, personalised"]) - statistics.median(
                arms["stage 2, new visitor"]
            )
            print(f"   personalization alone adds {personal:+.1f} ms p50 (budget {PERSONALIZATION_BUDGET_MS:.0f} ms)")
        finally:
            for server in servers:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
