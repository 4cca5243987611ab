"""Search latency while the catalog churns: shoppers search at a steady rate while products are
repriced and retitled through the admin service, before and during, side by side.

    .venv/bin/python bench/catalog_churn.py [--instance DIR] [--reprice 1000] [--retitle 50]
                                            [--rate 20] [--before 20] [--shoppers 4]

Without --instance, a fresh instance with the demo catalog is made (lexical search, as
bench/search_latency.py does); with one (a SQLite instance, e.g. with an active fine-tuned
version), a private copy of it is served. gunicorn serves it with the project's
gunicorn.conf.py (GUNICORN_WORKERS workers). Shoppers send GET /api/search at --rate requests
per second in all (the demo queries, Zipf-style) for --before seconds, then keep going while
this process, in the shop's own app, calls webapp.services.catalog_admin.update_product for
--reprice price changes and --retitle title changes, one transaction each, as the admin form
does.

Visibility: each worker's follower writes what it serves to INSTANCE_DIR/serving/ (see
webapp.services.serving_board), including the last catalog change number it applied; a
change is visible once every worker's card shows its number or a later one. The bench polls
those cards every 10 ms, so a visibility time is accurate to about that.

Prints p50/p99 before and during, their ratio, errors, the visibility times, and last:
`churn: p99 ratio R, errors E, slowest visibility S s`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_client import query_mix  # noqa: E402
from bench.latency_server import prepare, server_env, start_server  # noqa: E402
from bench.search_latency import active_version, copy_instance  # noqa: E402
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402

TARGETS = {"p99_ratio": 1.5, "visibility_s": 1.0}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(round(p / 100 * len(ordered) + 0.5)) - 1, 0)] if ordered else float("nan")


class Shoppers:
    """Threads sending searches at a steady total rate; each latency is tagged with its phase."""

    def __init__(self, base: str, queries: list[str], rate: float, threads: int) -> None:
        import http.client
        from urllib.parse import urlencode

        self.host, self.port = base.removeprefix("http://").split(":")
        self.paths = [f"/api/search?{urlencode({'q': q})}" for q in queries]
        self.interval = threads / rate
        self.threads = threads
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": []}
        self.errors = {"before": 0, "during": 0}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._client = http.client
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def _run(self, n: int) -> None:
        conn = self._client.HTTPConnection(self.host, int(self.port), timeout=30)
        rng = random.Random(n)
        next_at = time.monotonic() + rng.random() * self.interval
        i = n
        while not self._stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            phase = self.phase
            started = time.perf_counter()
            try:
                conn.request("GET", self.paths[i % len(self.paths)])
                reply = conn.getresponse()
                reply.read()
                ok = reply.status == 200
            except (OSError, self._client.HTTPException):
                ok = False
                conn.close()
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                self.latencies[phase].append(elapsed)
                self.errors[phase] += not ok
            i += self.threads
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=40)


def board_seqs(directory: Path) -> dict[str, int]:
    """Each live worker's last applied catalog change number, from its card."""
    seqs = {}
    for path in directory.glob("*.json"):
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        seqs[card["worker"]] = card.get("catalog_seq") or 0
    return seqs


class Watcher(threading.Thread):
    """Polls the workers' cards; records when every worker first showed each change number."""

    def __init__(self, directory: Path, workers: int) -> None:
        super().__init__(daemon=True)
        self.directory, self.workers = directory, workers
        self.seen: list[tuple[float, int]] = []  # (time, lowest number every worker has applied)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.01):
            seqs = board_seqs(self.directory)
            if len(seqs) >= self.workers:
                self.seen.append((time.monotonic(), min(seqs.values())))

    def visible_at(self, seq: int) -> float | None:
        return next((at for at, low in self.seen if low >= seq), None)

    def stop(self) -> None:
        self._done.set()
        self.join()


def churn(instance: Path, reprice: int, retitle: int, rng: random.Random) -> list[tuple[float, int, str]]:
    """Reprice and retitle products through the admin service; (commit time, change number, kind) each."""
    os.environ["KAIROS_INSTANCE_DIR"] = str(instance)
    os.environ.pop("DATABASE_URL", None)  # the served instance's SQLite file, as the server uses
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import PRODUCT_FIELDS, Product
    from webapp.services.catalog_admin import update_product
    from webapp.services.catalog_feed import feed_head

    app = create_app()
    done = []
    with app.app_context():
        ids = list(db.session.scalars(db.select(Product.id).where(Product.is_active.is_(True)).order_by(Product.id)))
        changes = [(pid, "price") for pid in rng.sample(ids, min(reprice, len(ids)))]
        changes += [(pid, "title") for pid in rng.sample(ids, min(retitle, len(ids)))]
        rng.shuffle(changes)
        for pid, kind in changes:
            product = db.session.get(Product, pid)
            form = {name: _form_value(getattr(product, name)) for name in PRODUCT_FIELDS}
            if kind == "price":
                form["price"] = f"{round((product.price or 20.0) * rng.uniform(0.8, 1.2), 2):.2f}"
            else:
                form["title"] = f"{product.title[:400]} churn{pid}"
            update_product(pid, form)
            done.append((time.monotonic(), feed_head(), kind))
            db.session.rollback()  # the next read sees every commit since
        db.session.remove()
        db.engine.dispose()
    return done


def _form_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", type=Path, help="a SQLite instance to copy (default: a fresh demo one)")
    parser.add_argument("--reprice", type=int, default=1000)
    parser.add_argument("--retitle", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="searches per second, all shoppers together")
    parser.add_argument("--before", type=float, default=20.0, help="seconds of searching before the churn")
    parser.add_argument("--shoppers", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(7)
    workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
    with tempfile.TemporaryDirectory(prefix="kairos-churn-") as scratch:
        instance = Path(scratch) / "shop"
        env = server_env(instance)
        if args.instance:
            copy_instance(args.instance, instance, active_version(args.instance), serve_it=True)
            prepare(env, import_catalog=False)
        else:
            prepare(env)
        server = start_server("churn", env)
        try:
            server.wait_healthy(timeout=300)
            watcher = Watcher(instance / "serving", workers)
            watcher.start()
            queries = [p["q"] for p in query_mix([q.text for q in read_esci_queries(DEMO_JUDGMENTS)], 5000)]
            shoppers = Shoppers(server.base, queries, args.rate, args.shoppers)
            shoppers.start()
            time.sleep(args.before)
            shoppers.phase = "during"
            started = time.monotonic()
            changes = churn(instance, args.reprice, args.retitle, rng)
            churn_seconds = time.monotonic() - started
            time.sleep(2.0)  # the last changes reach every worker
            shoppers.stop()
            watcher.stop()
        finally:
            server.stop()
    delays = []
    for committed, seq, _ in changes:
        at = watcher.visible_at(seq)
        delays.append(float("inf") if at is None else max(0.0, at - committed))
    before, during = shoppers.latencies["before"], shoppers.latencies["during"]
    errors = shoppers.errors["before"] + shoppers.errors["during"]
    ratio = percentile(during, 99) / percentile(before, 99)
    print(f"catalog churn, {time.strftime('%Y-%m-%d')}, {workers} workers, {args.rate:g} searches/s, ")
    print(f"  {len(changes)} changes ({args.reprice} reprices, {args.retitle} retitles) in {churn_seconds:.1f} s")
    print(f"{'phase':<8} {'searches':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for phase, values in (("before", before), ("during", during)):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{phase:<8} {len(values):>9} {shoppers.errors[phase]:>7} {p50:>8.1f} {p99:>8.1f}")
    print(f"p50 ratio {percentile(during, 50) / percentile(before, 50):.2f}, p99 ratio {ratio:.2f}")
    finite = [d for d in delays if d != float("inf")]
    print(
        f"visibility in every worker: median {statistics.median(finite):.3f} s, p99 {percentile(finite, 99):.3f} s, "
        f"never seen {len(delays) - len(finite)} (targets: p99 ratio <= {TARGETS['p99_ratio']}, "
        f"visibility <= {TARGETS['visibility_s']} s, 0 errors)"
    )
    print(f"churn: p99 ratio {ratio:.2f}, errors {errors}, slowest visibility {max(delays):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
