"""The served side of bench/load.py: a private instance (SQLite, or a private PostgreSQL database),
an analyst account, and gunicorn with the shop's rate limits raised out of the way."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from bench.latency_server import Server, prepare, server_env, start_server
from bench.search_latency import active_version, copy_instance

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("load@example.com", "load-test password 1234")
OUT_OF_THE_WAY = "1000000 per minute"


def admin_cookies(base: str, account: tuple[str, str] = ADMIN) -> requests.cookies.RequestsCookieJar:
    """Sign an account in through the login form (CSRF token and all); its session cookies."""
    session = requests.Session()
    page = session.get(f"{base}/admin/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{base}/admin/login", data={"email": account[0], "password": account[1], "csrf_token": token}
    )
    if "/admin/login" in answer.url:
        raise SystemExit(f"{account[0]} could not sign in")
    return session.cookies


def postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A private database on that PostgreSQL server: its SQLAlchemy URL and how to drop it."""
    import psycopg

    name = f"kairos_load_{os.getpid()}"
    admin = psycopg.connect(f"{server_url}/postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{server_url}/{name}", drop


def register_version(instance: Path, directory: Path, env: dict[str, str]) -> None:
    """Serve the instance's active version from the fresh database (same catalog, same product ids)."""
    import sqlite3

    from sqlalchemy import create_engine, text

    version_id, artifacts = active_version(instance)
    with sqlite3.connect(f"file:{instance / 'kairos.db'}?mode=ro", uri=True) as source:
        ids = dict(source.execute("SELECT external_id, id FROM products"))
    copied = directory / "models" / f"v{version_id}"
    shutil.copytree(artifacts, copied, ignore=shutil.ignore_patterns("*.safetensors"))
    engine = create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        if dict(conn.execute(text("SELECT external_id, id FROM products")).all()) != ids:
            raise SystemExit("the fresh catalog's product ids differ from the instance's: cannot serve its vectors")
        conn.execute(
            text(
                "INSERT INTO model_versions (id, name, status, retrieval_mode, artifact_path, metrics, created_at)"
                " VALUES (:id, 'load test copy', 'active', 'hybrid', :path, '{}', now())"
            ),
            {"id": version_id, "path": str(copied)},
        )
    engine.dispose()


def serve(instance: Path | None, work: Path, database_url: str | None) -> Server:
    directory = work / "instance"
    directory.mkdir(parents=True)
    if instance is not None and database_url is None:
        copy_instance(instance, directory, active_version(instance), serve_it=active_version(instance) is not None)
    env = server_env(directory)
    if database_url:
        env["DATABASE_URL"] = database_url
    # Limits on (their cost is part of a request) but out of the way: every client shares one address.
    env.update(KAIROS_RATELIMIT_ENABLED="1", KAIROS_SEARCH_RATE_LIMIT=OUT_OF_THE_WAY)
    env.update(KAIROS_EVENTS_RATE_LIMIT=OUT_OF_THE_WAY, KAIROS_IP_RATE_LIMIT=OUT_OF_THE_WAY)
    prepare(env, import_catalog=instance is None or database_url is not None)
    if instance is not None and database_url and active_version(instance):
        register_version(instance, directory, env)
    create = [sys.executable, "-m", "flask", "--app", "webapp", "admin", "create", ADMIN[0], "--role", "analyst"]
    subprocess.run([*create, "--password-stdin"], input=ADMIN[1] + "\n", cwd=ROOT, env=env, check=True, text=True)
    server = start_server("load", env)
    server.wait_healthy()
    return server
