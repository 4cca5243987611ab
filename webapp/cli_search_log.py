"""`flask --app webapp search-log store`: store the journals stopped web workers left behind.

A running server stores them itself (each worker at boot, and every 30 s); this is for reading
a complete log while the server is down, e.g. after the whole machine stopped uncleanly.
"""

from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from webapp.services.search_journal import SUFFIX
from webapp.services.search_log import journal_directory
from webapp.services.search_log_store import REJECTED, JournalStore

search_log_cli = AppGroup("search-log", help="The search log web workers write after answering.")


@search_log_cli.command("store")
def store_command() -> None:
    """Store every journal whose worker has stopped; journals of running workers are left to them."""
    directory = journal_directory(current_app._get_current_object())
    try:
        stored = JournalStore(current_app._get_current_object(), directory).store_orphans()
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database unavailable, journals kept for the next try: {exc}") from None
    live = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX)) if os.path.isdir(directory) else []
    click.echo(f"{directory}: {stored} searches stored; {len(live)} journals of running workers left to them")
    rejected = os.path.join(directory, REJECTED)
    if os.path.exists(rejected):
        with open(rejected, "rb") as lines:
            count = sum(1 for _ in lines)
        click.echo(f"{rejected}: {count} lines the database refused (see the web workers' log)", err=True)
