"""The load-generating side of bench/search_latency.py: keep-alive clients, query mix, percentiles."""

from __future__ import annotations

import http.client
import itertools
import math
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

HOST = "127.0.0.1"  # loopback only: the benchmark never leaves the machine
SEED = 20240601


@dataclass
class Result:
    endpoint: str
    concurrency: int
    latencies_ms: list[float]
    errors: int
    seconds: float

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] if ordered else float("nan")

    def row(self) -> str:
        """One line of the results table (see HEADER)."""
        n = len(self.latencies_ms)
        mean = sum(self.latencies_ms) / n if n else float("nan")
        return (
            f"{self.endpoint:<24} {self.concurrency:>5} {n:>9} {self.errors:>7} {self.percentile(50):>8.1f} "
            f"{self.percentile(99):>8.1f} {mean:>8.1f} {n / self.seconds:>8.1f}"
        )


HEADER = (
    f"{'server':<24} {'conc':>5} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
)


def drive(
    base: str, endpoint: str, params: list[dict], concurrency: int, max_seconds: float, label: str | None = None
) -> Result:
    """Send len(params) GETs from `concurrency` threads (one keep-alive connection each), or stop at the deadline.

    The client is plain http.client with the paths encoded up front: it shares the 2 cores with
    the server, and requests' per-call work (about 1 ms of CPU) showed up as server latency.
    """
    host, port = base.removeprefix("http://").split(":")
    paths = [f"{endpoint}?{urlencode(p)}" if p else endpoint for p in params]
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers: dict[str, str] = {}  # the session cookie, kept like a browser: one client, one visitor
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter)
                if i >= len(paths):
                    return
                started = time.perf_counter()
                try:
                    conn.request("GET", paths[i], headers=headers)
                    reply = conn.getresponse()
                    reply.read()
                    ok = reply.status == 200
                    cookie = reply.getheader("Set-Cookie")
                    if cookie:
                        headers["Cookie"] = cookie.split(";", 1)[0]
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()  # reconnects on the next request
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(label or endpoint, concurrency, latencies, errors[0], time.perf_counter() - started)


def _zipf_order(texts: list[str], rng: random.Random) -> list[str]:
    return rng.sample(texts, len(texts))  # rank 1 first: the head query


def query_mix(texts: list[str], count: int, seed: int = SEED) -> list[dict]:
    """`count` search parameter sets with Zipf(1) repetition over the queries: a few heads, a long tail."""
    rng = random.Random(seed)
    ordered = _zipf_order(texts, rng)
    weights = [1 / rank for rank in range(1, len(ordered) + 1)]
    return [{"q": q} for q in rng.choices(ordered, weights=weights, k=count)]


def head_queries(texts: list[str], count: int, seed: int = SEED) -> list[str]:
    """The `count` most frequent queries of query_mix (already seen many times when it has run)."""
    return _zipf_order(texts, random.Random(seed))[:count]
