"""Helpers of the search log's tests: the visitor, row counts, a worker process killed mid-work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import func, select

from webapp.extensions import db

VISITOR = "7d4f3c1e-0000-4000-8000-00000000feed"


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def as_visitor(client, visitor_id: str = VISITOR) -> None:
    with client.session_transaction() as session:
        session["vid"] = visitor_id


# A worker process that journals three searches and is SIGKILLed before any flush.
CHILD = """
import json, os, signal, sys
from webapp import create_app
from webapp.services.search_log import start_search_log
url, folder, visitor = sys.argv[1:4]
app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "INSTANCE_DIR": folder,
                  "INDEX_SYNC_SECONDS": 0.0, "SIGNAL_IMPRESSION_FLUSH_SECONDS": 0.0,
                  "SIGNAL_IMPRESSION_SYNC_SECONDS": 0.0, "SEARCH_LOG_FLUSH_SECONDS": 3600.0,
                  "CELERY": {"broker_url": "memory://", "result_backend": "cache+memory://"}})
start_search_log(app)
client = app.test_client()
with client.session_transaction() as session:
    session["vid"] = visitor
found = [client.get("/api/search?q=" + q).get_json() for q in ("towel", "mug", "towel")]
print(json.dumps([[f["search_id"], f["results"][0]["product_id"], f["results"][0]["position"]] for f in found]))
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)  # no exit hook, no flush: the journal is all that is left
"""


def killed_worker(app) -> list[list]:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, app.config["INSTANCE_DIR"], VISITOR],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == -9, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
