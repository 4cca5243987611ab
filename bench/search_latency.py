"""Search latency through the real server: gunicorn + Flask over a temporary SQLite instance.

    .venv/bin/python bench/search_latency.py [--requests 1000] [--seconds 30] [--concurrency 1,4,16]

Migrates and imports the demo catalog into a fresh instance directory, starts gunicorn with the
project's gunicorn.conf.py on a free loopback port, warms up, then drives GET /api/search with
the 150 demo queries (Zipf-distributed repetition, like real traffic) at each concurrency, with
GET /api/health as the floor. Client and server share the machine, so figures are end to end.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402

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
        n = len(self.latencies_ms)
        mean = sum(self.latencies_ms) / n if n else float("nan")
        return (
            f"{self.endpoint:<12} {self.concurrency:>5} {n:>9} {self.errors:>7} {self.percentile(50):>8.1f} "
            f"{self.percentile(99):>8.1f} {mean:>8.1f} {n / self.seconds:>8.1f}"
        )


HEADER = f"{'endpoint':<12} {'conc':>5} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_env(instance: Path) -> dict[str, str]:
    """The environment for the server: a private SQLite instance, nothing from the caller's services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "GUNICORN_ACCESSLOG")
    }
    env.update(KAIROS_INSTANCE_DIR=str(instance), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def prepare(env: dict[str, str]) -> None:
    """Migrate the empty database and import the demo catalog, as a release would."""
    for args in (["db", "upgrade"], ["catalog", "import"]):
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """Start gunicorn with the project's config on a loopback port."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"{HOST}:{port}",
        "webapp:create_app()",
    ]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(base: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Poll /api/health until it answers 200; fail with the server log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{base}/api/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or workers still building their index
        time.sleep(0.2)
    raise SystemExit(f"no healthy answer from {base} within {timeout:.0f} s:\n{log.read_text()}")


def stop_server(server: subprocess.Popen) -> None:
    """Ask gunicorn to stop gracefully; kill it if it lingers."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def drive(base: str, endpoint: str, params: list[dict], concurrency: int, max_seconds: float) -> Result:
    """Send len(params) GETs from `concurrency` threads (one keep-alive session each), or stop at the deadline."""
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter)
                if i >= len(params):
                    return
                started = time.perf_counter()
                try:
                    ok = session.get(f"{base}{endpoint}", params=params[i], timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(endpoint, concurrency, latencies, errors[0], time.perf_counter() - started)


def query_mix(texts: list[str], count: int, seed: int = SEED) -> list[dict]:
    """`count` search parameter sets with Zipf(1) repetition over the queries: a few heads, a long tail."""
    rng = random.Random(seed)
    ordered = rng.sample(texts, len(texts))
    weights = [1 / rank for rank in range(1, len(ordered) + 1)]
    return [{"q": q} for q in rng.choices(ordered, weights=weights, k=count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=30, help="time limit per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated client thread counts")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    texts = [q.text for q in read_esci_queries(DEMO_JUDGMENTS)]

    instance = Path(tempfile.mkdtemp(prefix="kairos-bench-"))
    env = server_env(instance)
    server = None
    try:
        prepare(env)
        port = free_port()
        base = f"http://{HOST}:{port}"
        server = start_server(env, port, instance / "gunicorn.log")
        wait_healthy(base, server, instance / "gunicorn.log")
        # Warm-up: every query once from several clients, so each worker has built its index.
        warm = drive(base, "/api/search", [{"q": t} for t in texts], 4, 120)
        print(
            f"# {date.today()}  cpus {os.cpu_count()}  gunicorn workers {env.get('GUNICORN_WORKERS', 2)} x "
            f"threads {env.get('GUNICORN_THREADS', 4)}  queries {len(texts)}  warm-up errors {warm.errors}"
        )
        print(HEADER)
        results = []
        for level in levels:
            for endpoint, params in (
                ("/api/health", [{}] * args.requests),
                ("/api/search", query_mix(texts, args.requests)),
            ):
                result = drive(base, endpoint, params, level, args.seconds)
                results.append(result)
                print(result.row(), flush=True)
        return 1 if warm.errors or any(r.errors for r in results) else 0
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
