"""Real processes for the fault tests: a private redis-server, gunicorn, a Celery worker, and
shoppers that search and click against a server from threads while a fault is injected."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bench.latency_server import Server, free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ["towel", "cotton towel", "kitchen", "blue towel", "bath", "towels pack", "xyzzy", ""]


class RedisServer:
    """A redis-server of the test's own on a free port (the shared one on 6379 is never touched)."""

    def __init__(self, folder: Path, append_only: bool = True) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.folder = folder
        self.append_only = append_only
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port and data folder) and wait until it answers."""
        import redis

        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command += ["--save", "", "--appendonly", "yes" if self.append_only else "no"]
        log = (self.folder / "redis.log").open("a")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url(), socket_connect_timeout=0.5).ping():
                    return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: what a crashed or OOM-killed Redis looks like to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_worker(
    env: dict[str, str], log_path: Path, queues: str = "inference,training", name: str | None = None
) -> subprocess.Popen:
    """A prefork Celery worker (one pool child) in its own process group, as in production."""
    log = log_path.open("a")
    command = [str(Path(sys.executable).with_name("celery")), "-A", "worker.celery_app", "worker", "-Q", queues]
    command += ["--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    if name:
        command += ["-n", f"{name}@%h"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process and its children (its own session), escalating to SIGKILL."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def children(pid: int) -> list[int]:
    """Direct child process ids (Linux /proc), e.g. a Celery worker's pool child."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def serve(env: dict[str, str], name: str = "faults") -> Server:
    """Real gunicorn (the project's config) on a free loopback port, healthy before returning."""
    server = start_server(name, env)
    try:
        server.wait_healthy(timeout=90)
    except SystemExit as exc:  # the bench helper exits; a test fails
        server.stop()
        pytest.fail(str(exc))
    return server


@dataclass
class Outcome:
    kind: str  # "search" or "click"
    started: float  # monotonic
    seconds: float
    status: int  # 0: no HTTP answer at all
    detail: str = ""
    search_id: int | None = None  # the id an answered search came back with


@dataclass
class Shoppers:
    """Threads that search and click a result, each with its own visitor cookie, until stopped."""

    base: str
    threads: int = 2
    click: bool = True  # False: search only
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Shoppers:
        for n in range(self.threads):
            thread = threading.Thread(target=self._shop, args=(random.Random(n),), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)
        return self.outcomes

    def _call(self, session: requests.Session, kind: str, method: str, url: str, **kwargs) -> requests.Response | None:
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=10, **kwargs)
        except requests.RequestException as exc:
            self.outcomes.append(Outcome(kind, started, time.monotonic() - started, 0, repr(exc)))
            return None
        detail = "" if response.status_code < 400 else response.text[:200]
        search_id = response.json().get("search_id") if kind == "search" and response.status_code == 200 else None
        outcome = Outcome(kind, started, time.monotonic() - started, response.status_code, detail, search_id)
        self.outcomes.append(outcome)
        return response

    def _shop(self, rng: random.Random) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            found = self._call(session, "search", "GET", f"{self.base}/api/search", params={"q": rng.choice(QUERIES)})
            if self.click and found is not None and found.status_code == 200 and found.json()["results"]:
                hit = rng.choice(found.json()["results"])
                click = {"type": "click", "product_id": hit["product_id"], "search_id": found.json()["search_id"]}
                click["position"] = hit["position"]
                self._call(session, "click", "POST", f"{self.base}/api/events", json={"events": [click]})
            time.sleep(0.02)


def between(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    """The outcomes of requests started in [start, end) (monotonic seconds)."""
    return [o for o in outcomes if start <= o.started < end]
