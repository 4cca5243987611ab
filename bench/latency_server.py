"""The served side of bench/search_latency.py: a private instance and a gunicorn on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.latency_client import HOST

ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nobody listens on right now: the OS picks it, or the first free one of
    BENCH_PORTS ("8100-8199") on a machine whose users share out port ranges."""
    if os.environ.get("KAIROS_BENCH_PORT"):  # one fixed port, for a bench that starts one server
        return int(os.environ["KAIROS_BENCH_PORT"])
    low, _, high = os.environ.get("BENCH_PORTS", "").partition("-")
    for port in range(int(low), int(high) + 1) if low and high else [0]:
        if port in _HANDED_OUT:  # handed to a server that may not listen yet
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            if port:
                _HANDED_OUT.add(port)
            return sock.getsockname()[1]
    raise SystemExit(f"no free port in BENCH_PORTS={os.environ['BENCH_PORTS']}")


def server_env(instance: Path) -> dict[str, str]:
    """The environment for a server: a private SQLite instance, nothing from the caller's services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "GUNICORN_ACCESSLOG",
            "GUNICORN_CONTROL_SOCKET",
        )
    }
    env.update(KAIROS_INSTANCE_DIR=str(instance), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    # Every bench client shares one address and few cookies: the shop's rate limits would answer 429.
    env.setdefault("KAIROS_RATELIMIT_ENABLED", "0")
    return env


def run_flask(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 600) -> str:
    """Run one `flask --app webapp` command against a bench instance; fail loudly with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webapp", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def prepare(env: dict[str, str], import_catalog: bool = True) -> None:
    """Migrate the instance's database to head and (by default) import the demo catalog, as a release would."""
    Path(env["KAIROS_INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)
    for args in (["db", "upgrade"], ["catalog", "import"])[: 2 if import_catalog else 1]:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        """The server's output so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-5000:]

    def wait_healthy(self, timeout: float = 120) -> None:
        """Poll /api/health until it answers 200; fail with the server log if it dies or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} gunicorn exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.base}/api/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or workers still loading their index and model
            time.sleep(0.2)
        raise SystemExit(
            f"no healthy answer from {self.name} at {self.base} within {timeout:.0f} s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        """Ask gunicorn to stop gracefully; kill it if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(name: str, env: dict[str, str]) -> Server:
    """Start gunicorn with the project's config on a free loopback port, logging into the instance dir."""
    port = free_port()
    log = Path(env["KAIROS_INSTANCE_DIR"]) / "gunicorn.log"
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
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(name, f"http://{HOST}:{port}", process, log)
