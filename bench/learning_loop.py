"""The learning loop end to end: simulated shoppers on a running shop, a fine-tune through the
real Celery worker, and NDCG@10 on the held-out test half before and after.

    .venv/bin/python bench/learning_loop.py --instance DIR [--sessions 3000] [--seed 1]
        [--corrections ips,none] [--train '{"max_steps": 40}'] [--redis redis://127.0.0.1:6379/8]

DIR is an instance whose zero-shot version is built and active (`flask --app webapp model
bootstrap --wait`). It is never modified: the bench works on a copy (database snapshot with
an empty feedback log, model directories copied and their paths rewritten), migrated to
head. It starts gunicorn (gunicorn.conf.py) on a free loopback port and a Celery worker
(queues training and inference, Redis broker), runs `flask simulate --demo --split train`
for N sessions (distinct visitors, one cookie each, train-half queries only), then for each
position-bias setting runs one fine-tune job of the zero-shot version (`ips`: weights from
the fitted click model; `none`: raw clicks) and prints test-half NDCG@10 side by side,
computed by the bench itself, with paired bootstrap 95% intervals over the test queries.
The test half is never trained on nor used to choose anything (versions store validation
figures only); the gate uses a validation slice of the train half, whose queries are also
kept out of training.

    .venv/bin/python bench/learning_loop.py --scenario shift [--searches 8000] [--seed 1]

runs instead the in-process stage-2 scenarios of bench/shift_scenario.py (no instance, no
model): shoppers whose preferences shift (time-aware vs static ranking) and shoppers with
a brand preference (personalised vs non-personal).

    .venv/bin/python bench/learning_loop.py --scenario click-model [--searches 6000] [--seed 1]

fits the click model on simulated traffic with known propensities, with and without
exploration (bench/click_recovery.py).
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
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency_server import prepare, server_env, start_server  # noqa: E402

CELERY = Path(sys.executable).with_name("celery")
LABELS = {"ips": "IPS-corrected clicks", "none": "raw clicks (no correction)"}


def copy_instance(source: Path, target: Path) -> int:
    """Snapshot the instance's database and model directories; returns the active version's id."""
    target.mkdir(parents=True)
    dst = sqlite3.connect(target / "kairos.db")
    with closing(sqlite3.connect(f"file:{source / 'kairos.db'}?mode=ro", uri=True)) as src:
        src.backup(dst)  # a consistent snapshot even while the source has a live WAL
    with dst:
        for table in ("events", "impressions", "search_queries"):
            dst.execute(f"DELETE FROM {table}")  # the loop learns from its own shoppers only
        rows = dst.execute("SELECT id, status, artifact_path FROM model_versions").fetchall()
        active = [r for r in rows if r[1] == "active"]
        if len(active) != 1:
            raise SystemExit(f"{source} needs exactly one active model version (found {len(active)})")
        for version_id, _, path in rows:
            if path and Path(path).is_dir():
                copied = target / "models" / f"v{version_id}"
                shutil.copytree(path, copied)
                dst.execute("UPDATE model_versions SET artifact_path = ? WHERE id = ?", (str(copied), version_id))
    dst.close()
    return int(active[0][0])


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [
        str(CELERY),
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        "training,inference",
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def run_job(app, parent_id: int, correction: str, train: dict, timeout: float) -> dict:
    """Queue one fine-tune through the broker and follow its job row (printing its log) until it ends."""
    from webapp.extensions import db
    from webapp.models import Job
    from webapp.services.jobs import start_job

    with app.app_context():
        params = {"parent_version_id": parent_id, "correction": correction, "train": train}
        job_id = start_job("fine_tune", "training.fine_tune", params).id
        print(f"\n== fine-tune job {job_id}: {LABELS[correction]}", flush=True)
        shown, deadline, started = 0, time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            db.session.expire_all()
            job = db.session.get(Job, job_id)
            logs = (job.result or {}).get("logs", [])
            for line in logs[shown:]:
                print(f"   {line[:220]}", flush=True)
            shown = len(logs)
            if job.status in ("succeeded", "failed", "cancelled"):
                return {
                    "job": job_id,
                    "status": job.status,
                    "error": job.error,
                    "result": job.result,
                    "seconds": time.monotonic() - started,
                }
            time.sleep(2)
    raise SystemExit(f"job {job_id} did not finish within {timeout:.0f} s")


def test_scores(app, version_ids: list[int]) -> dict[int, dict[str, dict[str, float]]]:
    """Per-query test-half NDCG@10 (dense, rrf, served) of each version, computed here: the bench
    reports the test half; nothing the shop chooses ever reads it."""
    from engine.serving.bundle import load_bundle
    from engine.serving.searcher import Searcher
    from webapp.extensions import db
    from webapp.models import ModelVersion, Product
    from webapp.services.search_index import product_card
    from worker.building.selection import per_query_ndcg
    from worker.building.version_build import build_labels

    with app.app_context():
        test = build_labels().test
        searcher = Searcher(candidates=app.config["SEARCH_CANDIDATES"])
        searcher.apply_changes(
            [product_card(p) for p in db.session.scalars(db.select(Product).where(Product.is_active))], []
        )
        scores = {}
        for version_id in version_ids:
            version = db.session.get(ModelVersion, version_id)
            if version.status not in ("ready", "active"):
                continue  # refused by its gate: nothing was published
            searcher.attach(load_bundle(version.artifact_path, version.id, retrieval_mode="hybrid"))
            scores[version_id] = {
                "dense": per_query_ndcg(searcher, test, "dense"),
                "rrf": per_query_ndcg(searcher, test, "rrf"),
                "served": per_query_ndcg(searcher, test, "hybrid"),
                "pipeline": version.metrics.get("served_pipeline", "rrf"),
            }
        return scores


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / max(len(values), 1)


def report(app, parent: int, runs: dict[str, dict]) -> None:
    """Test-half NDCG@10 side by side, each fine-tune's gain with a paired bootstrap 95% interval."""
    from engine.evaluation.paired import paired_bootstrap

    children = {c: (run["result"] or {}).get("version_id") for c, run in runs.items()}
    built = [v for v in children.values() if v]
    scores = test_scores(app, [parent, *built])
    base = scores[parent]
    queries = len(base["served"])
    print(f"\nNDCG@10 on the held-out test half ({queries} queries, never trained on or used to choose)")
    print(f"{'model':<44} {'dense':>7} {'rrf':>7} {'served':>7}  serves   gate (validation, vs parent)")
    print(
        f"{'zero-shot v' + str(parent):<44} {_mean(base['dense']):>7.4f} {_mean(base['rrf']):>7.4f} "
        f"{_mean(base['served']):>7.4f}  {base['pipeline']}"
    )
    for correction, run in runs.items():
        version_id = children[correction]
        gate = (run["result"] or {}).get("gate") or {}
        verdict = "passed" if run["status"] == "succeeded" else f"refused ({(run['error'] or '')[:60]})"
        if gate.get("queries"):
            verdict += f" {gate['difference']:+.4f} [{gate['low']:+.4f}, {gate['high']:+.4f}] n={gate['queries']}"
        name = f"fine-tuned v{version_id or '?'}, {LABELS[correction]}"
        if version_id not in scores:
            print(f"{name:<44} (no version built)  {verdict}")
            continue
        child = scores[version_id]
        print(
            f"{name:<44} {_mean(child['dense']):>7.4f} {_mean(child['rrf']):>7.4f} "
            f"{_mean(child['served']):>7.4f}  {child['pipeline']:<8} {verdict}"
        )
    print("\nchange over zero-shot on the test half, paired bootstrap 95% interval over test queries:")
    for correction, run in runs.items():
        version_id = children[correction]
        if version_id not in scores:
            continue
        parts = []
        for mode in ("dense", "rrf", "served"):
            test = paired_bootstrap(scores[version_id][mode], base[mode], margin=0.0)
            parts.append(
                f"{mode} {test.difference:+.4f} [{test.low:+.4f}, {test.high:+.4f}] "
                f"({100 * test.difference / max(test.baseline, 1e-9):+.1f}%)"
            )
        training = (run["result"] or {}).get("training", {})
        print(
            f"  {LABELS[correction]:<28} {'; '.join(parts)}  ({training.get('steps')} steps, "
            f"job {run['seconds'] / 60:.1f} min)"
        )


def main() -> None:
    scenario = argparse.ArgumentParser(add_help=False)
    scenario.add_argument("--scenario", choices=("fine-tune", "shift", "click-model"), default="fine-tune")
    chosen, rest = scenario.parse_known_args()
    if chosen.scenario == "click-model":
        from bench.click_recovery import main as click_main

        click_main(rest)
        return
    if chosen.scenario == "shift":
        from bench.shift_scenario import main as shift_main

        shift_main(rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[scenario])
    parser.add_argument("--instance", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="simulated visitors at a time")
    parser.add_argument("--corrections", default="ips,none")
    parser.add_argument("--train", default="{}", help="JSON overrides of FineTuneConfig for the jobs")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per fine-tune job")
    parser.add_argument("--keep", action="store_true", help="keep the working copy (path printed)")
    args = parser.parse_args()
    import redis

    work = Path(tempfile.mkdtemp(prefix="kairos-learning-loop-"))
    instance = work / "instance"
    parent = copy_instance(args.instance.resolve(), instance)
    env = server_env(instance)
    # One address plays thousands of shoppers: the shop's per-address limit would stop the crowd.
    env.update(
        CELERY_BROKER_URL=args.redis, CELERY_RESULT_BACKEND=args.redis, KAIROS_IP_RATE_LIMIT="1000000 per minute"
    )
    redis.Redis.from_url(args.redis).flushdb()  # no message or lock left by an interrupted earlier run
    prepare(env, import_catalog=False)  # flask db upgrade on the copy
    os.environ.update(env)
    from webapp import create_app

    app = create_app()
    server = start_server("shop", env)
    worker = start_worker(env, instance / "worker.log")
    try:
        server.wait_healthy(timeout=600)
        print(f"shop at {server.base} serving v{parent}; worker log {instance / 'worker.log'}")
        print(f"\n== simulating N = {args.sessions} shopper sessions (seed {args.seed})", flush=True)
        started = time.monotonic()
        simulate = subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "webapp",
                "simulate",
                "--base-url",
                server.base,
                "--demo",
                "--split",
                "train",
                "--sessions",
                str(args.sessions),
                "--seed",
                str(args.seed),
                "--workers",
                str(args.workers),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        print(simulate.stdout + simulate.stderr, f"({time.monotonic() - started:.0f} s)", flush=True)
        if simulate.returncode != 0:
            raise SystemExit("the simulation failed")
        server.stop()  # the shop's job is done; its CPU goes to training
        train = json.loads(args.train)
        runs = {c: run_job(app, parent, c, train, args.timeout) for c in args.corrections.split(",")}
        report(app, parent, runs)
    finally:
        server.stop()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        if args.keep:
            print(f"working copy kept at {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
