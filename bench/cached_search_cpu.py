"""What a cached search costs the server, in CPU as well as time, beside a health check.

    .venv/bin/python bench/cached_search_cpu.py --instance DIR [--requests 3000] [--rounds 3]

Serves a copy of a SQLite instance whose model version is active (hybrid) with one gunicorn
worker (2 threads) and, per round, drives GET /api/health and then the 5 head demo queries
repeated (stage-1 result cache and query-embedding cache hits) from one keep-alive client, as a
browsing shopper. Prints p50/p90 and the worker's CPU milliseconds per request (utime + stime
from /proc, all its threads: the search log's flush included), and the search's ratios to
health (p50, CPU). Wall-clock figures on these shared 2-core machines move 2-3x between hours; the CPU per
request and the ratio to health in the same round move far less, so they are what to compare
across commits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_client import drive, head_queries  # noqa: E402
from bench.latency_server import prepare, server_env, start_server  # noqa: E402
from bench.search_latency import active_version, copy_instance  # noqa: E402
from engine.evaluation.judgments import DEMO_JUDGMENTS, read_esci_queries  # noqa: E402


def cpu_ms(pids: list[int]) -> float:
    """CPU time used so far by these processes, all threads, in milliseconds."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def server_pids(master: int) -> list[int]:
    """gunicorn's master and its workers (the master's children)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *(int(pid) for pid in children)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=Path, required=True, help="SQLite instance with an active model version")
    parser.add_argument("--requests", type=int, default=3000, help="cached searches per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    version = active_version(args.instance)
    if version is None:
        parser.error(f"{args.instance} has no active model version (flask --app webapp model bootstrap --wait)")
    texts = [q.text for q in read_esci_queries(DEMO_JUDGMENTS)]
    work = Path(tempfile.mkdtemp(prefix="kairos-cpu-"))
    server = None
    try:
        copy_instance(args.instance, work / "hybrid", version, serve_it=True)
        env = server_env(work / "hybrid")
        prepare(env, import_catalog=False)
        env["GUNICORN_WORKERS"] = "1"  # one worker: the keep-alive client's requests all land on it
        server = start_server("hybrid", env)
        server.wait_healthy()
        drive(server.base, "/api/search", [{"q": t} for t in texts], 2, 180)  # index, model, caches warm
        pids = server_pids(server.process.pid)
        heads = head_queries(texts, 5)
        searches = [{"q": heads[i % len(heads)]} for i in range(args.requests)]
        print(
            f"# hybrid v{version[0]}, 1 worker x 2 threads, concurrency 1; health then {args.requests} cached searches"
        )
        print(
            f"{'round':>5} {'health p50':>11} {'cpu/req':>8} {'cached p50':>11} {'p90':>6} {'cpu/req':>8}"
            f" {'p50 x':>6} {'cpu x':>6}"
        )
        ratios, cpus, cpu_ratios = [], [], []
        for index in range(args.rounds):
            before = cpu_ms(pids)
            health = drive(server.base, "/api/health", [{}] * 1000, 1, 60)
            middle = cpu_ms(pids)
            cached = drive(server.base, "/api/search", searches, 1, 300)
            after = cpu_ms(pids)
            health_cpu = (middle - before) / len(health.latencies_ms)
            search_cpu = (after - middle) / len(cached.latencies_ms)
            ratio = cached.percentile(50) / health.percentile(50)
            ratios.append(ratio)
            cpus.append(search_cpu)
            cpu_ratios.append(search_cpu / health_cpu)
            print(
                f"{index + 1:>5} {health.percentile(50):>8.2f} ms {health_cpu:>5.2f} ms {cached.percentile(50):>8.2f} ms"
                f" {cached.percentile(90):>6.2f} {search_cpu:>5.2f} ms {ratio:>6.2f} {cpu_ratios[-1]:>6.2f}"
                + ("" if not (health.errors or cached.errors) else f"  errors {health.errors + cached.errors}")
            )
        print(
            f"median: cached search {statistics.median(cpus):.2f} ms CPU ({statistics.median(cpu_ratios):.2f}x a health"
            f" check's), p50 {statistics.median(ratios):.2f}x health"
        )
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
