"""Abuse through the real server: oversized bodies, forged feedback, and health beside them.

    .venv/bin/python bench/abuse.py [--port 8310] [--mib 8] [--repeats 3] [--forged 200]

Starts its own gunicorn (the project's gunicorn.conf.py, 2 workers) on a private SQLite
instance with a small catalog, twice: with the per-route body limits as configured
("limits") and, as the baseline, with one 50 MB limit for every route (what every endpoint
took before webapp/request_limits.py). Against each it sends oversized bodies (a JSON
`{"events": [{},...]}` to /api/events with and without Content-Length, a form to
/admin/login and /cart/add), --repeats times each, while a thread polls /api/health; then
a visitor posts --forged purchase events without a search_id for arbitrary products.

Prints per server: each worker's RSS growth (target under 50 MB), the response codes, how
many oversized bodies were refused, health p50 before and during the attack, and how many
forged events were accepted. The last line sums up the "limits" server:
`abuse: rss growth max M MB, oversized refused X of Y, forged accepted F of G`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_server import Server, run_flask, server_env  # noqa: E402

HOST = "127.0.0.1"
PRODUCTS = 200


def write_catalog(path: Path) -> list[str]:
    """A small catalog (the bench measures request handling, not search)."""
    ids = [f"AB{i:04d}" for i in range(PRODUCTS)]
    rows = [
        {"id": pid, "title": f"Abuse test towel {i}", "brand": "Acme", "price": 5 + i % 20} for i, pid in enumerate(ids)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return ids


def start(name: str, env: dict[str, str], port: int) -> Server:
    """gunicorn with the project's config on the given loopback port."""
    log = Path(env["KAIROS_INSTANCE_DIR"]) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"{HOST}:{port}"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "webapp:create_app()"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, f"http://{HOST}:{port}", process, log)
    server.wait_healthy()
    return server


def workers(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def oversized(base: str, mib: int) -> list[tuple[str, str, dict, object]]:
    """(label, url, headers, body) of each oversized request kind."""
    size = mib * 2**20
    events = b'{"events": [' + b",".join([b"{}"] * (size // 3)) + b"]}"

    def chunked():
        for start in range(0, len(events), 2**20):
            yield events[start : start + 2**20]

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    login_form = b"email=a%40b.c&password=" + b"x" * size
    cart_form = b"product_id=AB0001&" + b"&".join(b"f%d=1" % i for i in range(size // 8))
    return [
        ("events json", f"{base}/api/events", {"Content-Type": "application/json"}, events),
        ("events chunked", f"{base}/api/events", {"Content-Type": "application/json"}, chunked),
        ("login form", f"{base}/admin/login", form, login_form),
        ("cart form", f"{base}/cart/add", form, cart_form),
    ]


def send(url: str, headers: dict, body: object) -> str:
    """POST a body; the status code, or what went wrong on the connection."""
    try:
        data = body() if callable(body) else body
        return str(requests.post(url, data=data, headers=headers, timeout=120, allow_redirects=False).status_code)
    except requests.RequestException as exc:
        return f"conn:{type(exc).__name__}"


def health_p50(base: str, stop: threading.Event, timings: list[float]) -> None:
    """Poll /api/health until told to stop, keeping each answer's milliseconds."""
    session = requests.Session()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            session.get(f"{base}/api/health", timeout=30)
            timings.append((time.perf_counter() - started) * 1000)
        except requests.RequestException:
            timings.append(30_000.0)
        time.sleep(0.02)


def forged(base: str, ids: list[str], count: int) -> int:
    """Purchases without a search_id for arbitrary products from one cookie: how many were stored."""
    session = requests.Session()
    session.get(f"{base}/")  # the visitor cookie
    accepted = 0
    for i in range(0, count, 10):
        batch = [{"type": "purchase", "product_id": ids[(i + j) % len(ids)]} for j in range(min(10, count - i))]
        response = session.post(f"{base}/api/events", json={"events": batch}, timeout=30)
        if response.status_code == 201:
            accepted += response.json()["stored"]
    return accepted


def run_one(name: str, env: dict[str, str], port: int, ids: list[str], args: argparse.Namespace) -> dict:
    server = start(name, env, port)
    try:
        pids = workers(server.process.pid)
        quiet: list[float] = []
        stop = threading.Event()
        poller = threading.Thread(target=health_p50, args=(server.base, stop, quiet))
        poller.start()
        time.sleep(5)  # health alone first: the baseline beside the attack's
        stop.set()
        poller.join()
        before = {pid: rss_mb(pid) for pid in pids}
        peak = dict(before)
        codes: Counter[str] = Counter()
        loaded: list[float] = []
        stop = threading.Event()
        poller = threading.Thread(target=health_p50, args=(server.base, stop, loaded))
        poller.start()
        for _ in range(args.repeats):
            for label, url, headers, body in oversized(server.base, args.mib):
                codes[f"{label} {send(url, headers, body)}"] += 1
                peak = {pid: max(peak[pid], rss_mb(pid)) for pid in pids}
        stop.set()
        poller.join()
        after = {pid: rss_mb(pid) for pid in pids}
        growth = max(max(peak[pid], after[pid]) - before[pid] for pid in pids)
        accepted = forged(server.base, ids, args.forged)
    finally:
        server.stop()
    total = args.repeats * 4
    refused = sum(n for key, n in codes.items() if key.endswith(" 413"))
    return {
        "name": name,
        "growth": growth,
        "rss": {pid: (before[pid], peak[pid]) for pid in pids},
        "codes": dict(sorted(codes.items())),
        "refused": refused,
        "total": total,
        "health_quiet": statistics.median(quiet) if quiet else float("nan"),
        "health_attack": statistics.median(loaded) if loaded else float("nan"),
        "accepted": accepted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8310, help="first of two loopback ports")
    parser.add_argument("--mib", type=int, default=8, help="size of each oversized body")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forged", type=int, default=200)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="kairos-abuse-") as folder:
        for offset, (name, extra) in enumerate(
            (("limits", {}), ("one 50 MB limit", {"KAIROS_MAX_BODY_KB": "51200", "KAIROS_MAX_ADMIN_FORM_KB": "51200"}))
        ):
            instance = Path(folder) / f"i{offset}"
            env = {**server_env(instance), "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "2", **extra}
            instance.mkdir(parents=True)
            run_flask(env, "db", "upgrade")
            ids = write_catalog(instance / "catalog.jsonl")
            run_flask(env, "catalog", "import", str(instance / "catalog.jsonl"))
            results.append(run_one(name, env, args.port + offset, ids, args))
    print(f"oversized bodies of {args.mib} MiB, {args.repeats} of each kind; {args.forged} forged purchases")
    print(
        f"{'server':<16} {'rss growth MB':>13} {'refused':>9} {'health p50 ms':>14} {'(attack)':>9} {'forged ok':>10}"
    )
    for r in results:
        print(
            f"{r['name']:<16} {r['growth']:>13.1f} {r['refused']:>4} of {r['total']:<2} {r['health_quiet']:>14.2f}"
            f" {r['health_attack']:>9.2f} {r['accepted']:>5} of {args.forged}"
        )
    for r in results:
        print(f"  {r['name']}: codes {r['codes']}")
        print(f"  {r['name']}: rss per worker MB (before, peak) {[(round(a), round(b)) for a, b in r['rss'].values()]}")
    mine = results[0]
    print(
        f"abuse: rss growth max {mine['growth']:.1f} MB, oversized refused {mine['refused']} of {mine['total']},"
        f" forged accepted {mine['accepted']} of {args.forged}"
    )


if __name__ == "__main__":
    main()
