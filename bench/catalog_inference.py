"""Catalog inference throughput through the real Celery path: a version build's products/s on this machine.

    .venv/bin/python bench/catalog_inference.py [--products 1000] [--timeout 1800] [--redis redis://127.0.0.1:6379/7]

Imports the first N demo products into a temporary SQLite instance, starts a real Celery worker
(`celery -A worker.celery_app worker -Q inference --concurrency 1`, Redis broker and result
backend), runs `flask --app webapp model bootstrap --wait` and reads the job row: total build
seconds and products/s, split into phases by polling the job's progress (load + ONNX export,
batched embedding, int8/ranker selection + publish). Then, with the worker stopped, embeds the
same product texts in this process with engine.modeling.inference.embed_texts as the baseline,
so the cost of everything around the embedding shows as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.latency_server import run_flask  # noqa: E402

DEMO_ZIP = ROOT / "data" / "esci-us-sample" / "esci_us_ecommerce_shrunk.ndjson.zip"
CELERY = ROOT / ".venv" / "bin" / "celery"
PHASES = {"export done": 0.15, "embedding done": 0.85}  # job progress marks set by worker/building/version_build.py


def write_subset(target: Path, count: int) -> None:
    """The first `count` products of the demo _bulk file (action line + document line each)."""
    with zipfile.ZipFile(DEMO_ZIP) as archive, archive.open(archive.namelist()[0]) as source:
        lines = [line for _, line in zip(range(2 * count), source, strict=False)]
    target.write_bytes(b"".join(lines))


def flask(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    """Run one `flask --app webapp` command against the bench instance; fail loudly."""
    return run_flask(env, *args, timeout=timeout)


def start_worker(env: dict[str, str], log: Path, timeout: float = 180) -> subprocess.Popen:
    """A real Celery worker on the inference queue; returns once it says it is ready."""
    command = [
        str(CELERY),
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        "inference",
        "--concurrency",
        "1",
        "-n",
        f"bench-inference-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    with log.open("w") as out:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own group, so stopping it reaches its pool child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"celery worker exited with {worker.returncode}:\n{log.read_text()[-5000:]}")
        if " ready." in log.read_text(errors="replace"):
            return worker
        time.sleep(0.5)
    stop_worker(worker)
    raise SystemExit(f"celery worker not ready within {timeout:.0f} s:\n{log.read_text()[-5000:]}")


def stop_worker(worker: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM); the whole group is killed if it lingers."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def follow_build(env: dict[str, str], database: Path, timeout: float) -> dict[str, float]:
    """Run `model bootstrap --wait` while polling the job row; wall-clock time each phase mark was first seen."""
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "webapp",
        "model",
        "bootstrap",
        "--wait",
        "--timeout",
        str(timeout),
    ]
    bootstrap = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout + 60
    while bootstrap.poll() is None and time.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute("SELECT progress FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
        for name, mark in PHASES.items():
            if row and row[0] >= mark and name not in seen:
                seen[name] = time.time()
        time.sleep(0.25)
    if bootstrap.poll() is None:
        bootstrap.kill()
    output = bootstrap.communicate()[0]
    if bootstrap.returncode != 0:
        raise SystemExit(f"model bootstrap failed ({bootstrap.returncode}):\n{output[-5000:]}")
    return seen


def epoch(stamp: str) -> float:
    """A naive-UTC timestamp column (the models' contract) as seconds since the epoch."""
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def product_texts(instance: Path) -> list[str]:
    """The texts the build embedded: every active product's card text, read through the app's own code."""
    from sqlalchemy import select

    from engine.serving.searcher import card_text
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import Product
    from webapp.services.search_index import product_card

    app = create_app({"INSTANCE_DIR": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'kairos.db'}"})
    with app.app_context():
        products = db.session.scalars(select(Product).where(Product.is_active).order_by(Product.id)).all()
        return [card_text(product_card(p)) for p in products]


def in_process(texts: list[str], batch_size: int, max_length: int, threads: int) -> tuple[float, float, str]:
    """(seconds to load the model, seconds to embed all texts, device) with the build's embed_texts."""
    import torch

    # Set, not inherited: faiss (imported with the webapp) sets the shared OpenMP pool to 1 thread when torch
    # is already loaded, which would halve this baseline; the worker's child imports torch after faiss and
    # keeps torch's default (all cores).
    torch.set_num_threads(threads)

    from engine.modeling.encoder import load_pretrained
    from engine.modeling.inference import default_device, embed_texts

    started = time.perf_counter()
    encoder, tokenizer = load_pretrained()
    loaded = time.perf_counter() - started
    embed_texts(encoder, tokenizer, texts[:batch_size], batch_size=batch_size, max_length=max_length)  # warm up
    started = time.perf_counter()
    embed_texts(encoder, tokenizer, texts, batch_size=batch_size, max_length=max_length)
    return (
        loaded,
        time.perf_counter() - started,
        f"{default_device()} (torch {torch.__version__}, {torch.get_num_threads()} threads)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000, help="how many demo products to import and embed")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the build may take")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for the baseline")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7", help="broker and result backend")
    args = parser.parse_args()
    from worker.building.version_build import BuildSettings  # the settings the Celery build runs with

    settings = BuildSettings()
    work = Path(tempfile.mkdtemp(prefix="kairos-inference-"))
    instance = work / "instance"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GUNICORN_CONTROL_SOCKET")}
    env.update(
        KAIROS_INSTANCE_DIR=str(instance),
        CELERY_BROKER_URL=args.redis,
        CELERY_RESULT_BACKEND=args.redis,
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    worker = None
    try:
        instance.mkdir()
        write_subset(work / "subset.ndjson", args.products)
        flask(env, "db", "upgrade")
        flask(env, "catalog", "import", str(work / "subset.ndjson"))
        worker = start_worker(env, work / "worker.log")
        seen = follow_build(env, instance / "kairos.db", args.timeout)
        with closing(sqlite3.connect(f"file:{instance / 'kairos.db'}?mode=ro", uri=True)) as conn:
            created, started, finished, result = conn.execute(
                "SELECT created_at, started_at, finished_at, result FROM jobs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        stop_worker(worker)
        texts = product_texts(instance)
        load_s, embed_s, device = in_process(texts, settings.batch_size, settings.product_max_length, args.threads)
    finally:
        if worker is not None:
            stop_worker(worker)
        shutil.rmtree(work, ignore_errors=True)

    products = len(texts)
    total = epoch(finished) - epoch(started)
    marks = [epoch(started), *(seen.get(name, float("nan")) for name in PHASES), epoch(finished)]
    export_s, celery_embed_s, select_s = (b - a for a, b in zip(marks, marks[1:], strict=False))
    result = json.loads(result) if isinstance(result, str) else result
    print(f"# {datetime.now():%Y-%m-%d}  cpus {os.cpu_count()}  load {os.getloadavg()[0]:.1f}  device {device}")
    print(
        f"# {products} demo products, batch {settings.batch_size}, max_length {settings.product_max_length}, "
        f"serve variant chosen {result.get('serve_variant', '?')}"
    )
    print(
        f"celery build (job row, started -> finished)  {total:8.1f} s  {products / total:8.1f} products/s"
        f"   (+{epoch(started) - epoch(created):.1f} s from job row to start: queue wait and torch import)"
    )
    print(f"  load model + ONNX export (fp32, int8)      {export_s:8.1f} s")
    print(
        f"  batched embedding                          {celery_embed_s:8.1f} s  {products / celery_embed_s:8.1f}"
        " products/s"
    )
    print(f"  int8/ranker selection + publish            {select_s:8.1f} s")
    print(f"in process embed_texts (model load {load_s:.1f} s)  {embed_s:8.1f} s  {products / embed_s:8.1f} products/s")
    print(
        f"ratio: build total / in-process embedding {total / embed_s:.2f}x;"
        f" celery embedding step / in-process {celery_embed_s / embed_s:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
