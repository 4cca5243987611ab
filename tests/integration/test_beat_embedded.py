"""`make run`'s scheduling, for real: Celery beat and a worker on the embedded default (SQLite
database, kombu's SQLAlchemy transport on SQLite), started as scripts/run.sh starts them. Beat
sends each schedule, the worker runs it, and the run record the admin overview reads fills in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from webapp.services.schedule_runs import BEAT_ROW, SCHEDULES

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(os.environ.get("KAIROS_TEST_DATABASE_URL")),
        reason="the embedded default is SQLite: the first pass runs it",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def test_run_sh_starts_beat_and_beat_runs_every_schedule_on_sqlite(tmp_path):
    script = (ROOT / "scripts" / "run.sh").read_text()
    beat_line = re.search(r'"\$BIN/celery" -A worker\.celery_app beat[^\n]*', script)
    assert beat_line, "scripts/run.sh must start Celery beat"
    db_url = f"sqlite:///{tmp_path / 'kairos.db'}"
    env = {
        **os.environ,
        "KAIROS_INSTANCE_DIR": str(tmp_path),  # the embedded broker lives here too
        "DATABASE_URL": db_url,
        "HF_HUB_OFFLINE": "1",
        "KAIROS_CONTEXT_FIT_INTERVAL": "2",
        "KAIROS_EXPERIMENT_SNAPSHOT_SECONDS": "2",
        "KAIROS_FINE_TUNE_INTERVAL": "2",
        "KAIROS_JOBS_STALE_SWEEP_SECONDS": "2",
    }
    for name in ("KAIROS_TEST_DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "webapp", "db", "upgrade"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    log = (tmp_path / "processes.log").open("a")
    beat = [CELERY, "-A", "worker.celery_app", "beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat")]
    worker = [CELERY, "-A", "worker.celery_app", "worker", "-Q", "inference,training", "--concurrency", "1"]
    worker += ["--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for cmd in (beat, worker)
    ]
    engine = create_engine(db_url)
    wanted = {BEAT_ROW} | {schedule.name for schedule in SCHEDULES}  # every schedule, and beat itself
    seen: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and set(seen) != wanted:
            time.sleep(1)
            with engine.connect() as conn:
                seen = dict(conn.execute(text("SELECT name, outcome FROM schedule_runs")).all())
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        engine.dispose()
    assert set(seen) == wanted, (seen, (tmp_path / "processes.log").read_text()[-3000:])
    assert seen["kairos-scheduled-fine-tune"] == "started: False, reason: no active model version"
