"""Sustained load through real gunicorn: a shop's mix at stepped offered rates, open loop.

    .venv/bin/python bench/load.py [--instance DIR] [--rates 10,20,40,60,80,100] [--seconds 20]
                                   [--slo-ms 100] [--clients 48]

Serves a private copy of the instance (or a fresh one with the demo catalog, lexical only)
with the project's gunicorn.conf.py (GUNICORN_WORKERS / GUNICORN_THREADS / KAIROS_ENCODER_THREADS
from the environment) on a loopback port, signs an analyst in, warms up, then offers each rate
for --seconds. Arrivals are scheduled at the offered rate whatever the server does (open loop),
and a latency counts from the scheduled moment, so a server that falls behind shows it. The mix:
API searches with the 150 demo queries repeated Zipf-style (some with a page, brand or sort),
as-you-type suggestions for prefixes of those queries, storefront search pages, clicks and purchases posted to /api/events for results the same
visitor saw, and admin page reads. Rate limits stay on but are raised out of the way (one
address sends everything). The sustained rate is the highest step with p99 <= --slo-ms, no
errors, and at least 95% of the offered rate completed. The client runs on the same machine
and takes CPU from the server: the figure is a floor.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_client import query_mix  # noqa: E402
from bench.load_setup import admin_cookies, postgres_database, serve  # noqa: E402
from bench.search_latency import active_version  # noqa: E402
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402

# Share of each action in the mix (a visitor mostly searches; a few click, fewer buy).
MIX = {"api_search": 0.45, "suggest": 0.15, "page_search": 0.08, "click": 0.20, "purchase": 0.05, "admin": 0.07}
ADMIN_PAGES = ["/admin/", "/admin/analytics", "/admin/models", "/admin/jobs", "/admin/catalog"]
BRANDS = ["Amazon Basics", "Apple", "Samsung", "Sony", "Logitech"]


KEEPALIVE_SECONDS = 1.5  # under gunicorn's keepalive (2 s): an idle connection is dropped here first


@dataclass
class Shopper:
    """One visitor: its cookie jar and the results it was last shown (for its clicks)."""

    browser: requests.Session = field(default_factory=requests.Session)
    shown: list[tuple[int, str, int]] = field(default_factory=list)  # (search id, product id, position)
    last_used: float = 0.0

    @property
    def session(self) -> requests.Session:
        """The visitor's session; a connection idle long enough for the server to close it is not reused
        (a browser retries a request lost that way; requests would report it as an error)."""
        now = time.monotonic()
        if now - self.last_used > KEEPALIVE_SECONDS:
            self.browser.close()  # closes pooled connections, keeps the cookies
        self.last_used = now
        return self.browser


@dataclass
class Step:
    rate: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0
    scheduled: int = 0

    def all(self) -> list[float]:
        return sorted(x for values in self.latencies.values() for x in values)

    def done(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def pct(self, p: float, values: list[float] | None = None) -> float:
        values = self.all() if values is None else sorted(values)
        return values[max(math.ceil(p / 100 * len(values)) - 1, 0)] if values else float("nan")


class Refused(Exception):
    """The server answered, but not with the expected status."""


def expect(response: requests.Response, status: int) -> requests.Response:
    """The response, or Refused naming its status and the start of its body."""
    if response.status_code != status:
        raise Refused(f"{response.status_code} {response.text[:100]!r}")
    return response


class Client:
    """Client threads that run the actions a dispatcher schedules, each with its own visitors."""

    def __init__(self, base: str, texts: list[str], threads: int, admin_cookies) -> None:
        self.base, self.texts, self.threads = base, texts, threads
        self.admin_cookies = admin_cookies
        self.tasks: queue.Queue = queue.Queue()
        self.step: Step | None = None
        self.lock = threading.Lock()
        for n in range(threads):
            threading.Thread(target=self._run, args=(random.Random(n),), daemon=True).start()

    def _run(self, rng: random.Random) -> None:
        shoppers = [Shopper() for _ in range(4)]
        admin = Shopper()
        admin.browser.cookies.update(self.admin_cookies)
        queries = iter(query_mix(self.texts, 1_000_000, seed=rng.randrange(1 << 30)))
        while True:
            scheduled, kind, step = self.tasks.get()
            shopper = rng.choice(shoppers)
            if kind in ("click", "purchase") and not shopper.shown:
                kind = "api_search"  # a visitor clicks and buys only what it was shown
            try:
                self._act(kind, shopper, admin, next(queries)["q"], rng)
                failure = ""
            except (Refused, requests.RequestException) as exc:
                failure = f"{kind}: {exc}"[:160]
            elapsed = (time.monotonic() - scheduled) * 1000
            with self.lock:
                if failure:
                    step.errors[failure] += 1
                else:
                    step.latencies[kind].append(elapsed)

    def _act(self, kind: str, shopper: Shopper, admin: Shopper, text: str, rng: random.Random) -> None:
        if kind == "suggest":  # a keystroke: a prefix of a query being typed
            prefix = text[: rng.randint(min(2, len(text)), len(text))]
            expect(shopper.session.get(f"{self.base}/api/suggest", params={"q": prefix}, timeout=30), 200)
            return
        if kind in ("api_search", "page_search"):
            params: dict = {"q": text}
            if rng.random() < 0.15:
                params["page"] = 2
            if rng.random() < 0.1:
                params["brand"] = rng.choice(BRANDS)
            if rng.random() < 0.1:
                params["sort"] = rng.choice(["price_asc", "rating"])
            if kind == "page_search":
                expect(shopper.session.get(f"{self.base}/search", params=params, timeout=30), 200)
                return
            body = expect(shopper.session.get(f"{self.base}/api/search", params=params, timeout=30), 200).json()
            shopper.shown = [(body["search_id"], r["product_id"], r["position"]) for r in body["results"][:10]]
            return
        if kind in ("click", "purchase"):
            search_id, product_id, position = rng.choice(shopper.shown)
            event = {"type": kind, "product_id": product_id, "search_id": search_id, "position": position}
            expect(shopper.session.post(f"{self.base}/api/events", json={"events": [event]}, timeout=30), 201)
            return
        page = rng.choice(ADMIN_PAGES)
        expect(admin.session.get(f"{self.base}{page}", timeout=30, allow_redirects=False), 200)

    def offer(self, rate: float, seconds: float) -> Step:
        """Schedule rate actions per second for seconds (Poisson arrivals), then wait for them to end."""
        step = Step(rate)
        rng = random.Random(int(rate * 1000))
        kinds, weights = list(MIX), list(MIX.values())
        started = time.monotonic()
        next_at = started
        while next_at < started + seconds:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.tasks.put((next_at, rng.choices(kinds, weights)[0], step))
            step.scheduled += 1
            next_at += rng.expovariate(rate)
        deadline = time.monotonic() + 60
        while step.done() + sum(step.errors.values()) < step.scheduled and time.monotonic() < deadline:
            time.sleep(0.05)
        missing = step.scheduled - step.done() - sum(step.errors.values())
        if missing:
            step.errors["unanswered within 60 s"] += missing
        step.seconds = time.monotonic() - started
        return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=Path, help="SQLite instance dir to copy (its active version serves)")
    parser.add_argument(
        "--rates", default="20,40,60,80,100,120,140,170,200", help="offered actions per second, stepped"
    )
    parser.add_argument("--seconds", type=float, default=20, help="seconds per step")
    parser.add_argument("--slo-ms", type=float, default=100, help="p99 target in ms")
    parser.add_argument("--clients", type=int, default=48, help="client threads")
    parser.add_argument(
        "--postgres", help="serve from a private database on this server, e.g. postgresql://postgres@127.0.0.1:5432"
    )
    args = parser.parse_args()
    texts = [q.text for q in read_esci_queries(DEMO_JUDGMENTS)]
    work = Path(tempfile.mkdtemp(prefix="kairos-load-"))
    server, drop = None, None
    try:
        database_url = None
        if args.postgres:
            database_url, drop = postgres_database(args.postgres.rstrip("/"))
        server = serve(args.instance, work, database_url)
        client = Client(server.base, texts, args.clients, admin_cookies(server.base))
        # Until every worker has built its index and loaded its model (gunicorn answers health from the first).
        for _ in range(8):
            warm = client.offer(10, 10)
            if warm.pct(99) <= args.slo_ms and not warm.errors:
                break
        version = active_version(args.instance) if args.instance else None
        print(
            f"# {date.today()}  cpus {os.cpu_count()}  load avg {os.getloadavg()[0]:.1f}  gunicorn "
            f"{os.environ.get('GUNICORN_WORKERS', 2)} workers x {os.environ.get('GUNICORN_THREADS', 2)} threads  "
            f"encoder threads {os.environ.get('KAIROS_ENCODER_THREADS', 1)}  "
            f"model {f'v{version[0]}' if version else 'none (lexical)'}  client threads {args.clients}  "
            f"warm-up errors {dict(warm.errors) or 0}"
        )
        print(
            f"{'offered/s':>9} {'done/s':>7} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  p99 by kind (ms)"
        )
        sustained, misses = None, 0
        for rate in [float(r) for r in args.rates.split(",")]:
            step = client.offer(rate, args.seconds)
            errors = sum(step.errors.values())
            if errors:
                print(f"# errors at {rate:.0f}/s: {dict(step.errors)}")
            by_kind = "  ".join(f"{k} {step.pct(99, v):.0f}" for k, v in sorted(step.latencies.items()))
            print(
                f"{rate:>9.0f} {step.done() / step.seconds:>7.1f} {errors:>6} {step.pct(50):>7.1f} "
                f"{step.pct(95):>7.1f} {step.pct(99):>7.1f}  {by_kind}",
                flush=True,
            )
            # Latency counts from the scheduled moment: a server that falls behind fails on p99.
            good = errors == 0 and step.pct(99) <= args.slo_ms
            if good:
                sustained, misses = (rate, step), 0
            else:
                misses += 1
                if misses == 2:
                    break  # two steps past the knee: the rest would only queue
        if sustained is None:
            print(f"# no step met p99 <= {args.slo_ms:.0f} ms with 0 errors")
            return 1
        rate, step = sustained
        print(
            f"# sustained {rate:.0f} actions/s ({step.done() / step.seconds:.1f} done/s): p50 {step.pct(50):.1f} ms, "
            f"p95 {step.pct(95):.1f} ms, p99 {step.pct(99):.1f} ms, 0 errors"
        )
        return 0
    finally:
        if server is not None:
            server.stop()
            log = server.log.read_text(errors="replace")
            boots = log.count("Booting worker")
            troubles = [line for line in log.splitlines() if "[CRITICAL]" in line or "[ERROR]" in line]
            print(f"# server log: {boots} worker boots, {len(troubles)} error lines", *troubles[:5], sep="\n# ")
        if drop is not None:
            drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
