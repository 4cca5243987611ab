"""Command line: `flask --app webapp catalog import PATH` and friends."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from engine.catalog.readers import CatalogFileError
from webapp.cli_admin import admin_cli
from webapp.cli_eval import eval_command
from webapp.cli_jobs import jobs_cli
from webapp.cli_merchandising import rules_cli, synonyms_cli
from webapp.cli_model import model_cli
from webapp.cli_ranker import ranker_cli
from webapp.cli_search_log import search_log_cli
from webapp.cli_signals import signals_cli
from webapp.cli_simulate import simulate_command
from webapp.services.catalog_import import ImportOptions, import_catalog, read_limits

catalog_cli = AppGroup("catalog", help="Manage the product catalog.")


@catalog_cli.command("import")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--max-errors", default=20, show_default=True, help="How many bad lines to list.")
@click.option("--reactivate", is_flag=True, help="Let rows show products an admin hid.")
@click.option(
    "--established/--new-arrivals",
    default=None,
    help="Products the shop sold before (not new arrivals); default: only when the catalog is empty.",
)
def import_command(path: str | None, max_errors: int, reactivate: bool, established: bool | None) -> None:
    """Import products from a _bulk ndjson, JSON Lines or CSV file (plain or .zip).

    Without PATH, imports the demo catalog shipped in data/. An existing product changes only
    in the fields its row carries; see webapp/services/catalog_import.py.
    """
    path = path or current_app.config["DEMO_CATALOG"]
    bar = click.progressbar(length=1, label="Importing", show_pos=True)

    def progress(done: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(done - bar.pos)

    try:
        with bar:
            options = ImportOptions(reactivate=reactivate, established=established)
            report = import_catalog(path, progress, options, read_limits(current_app.config))
    except CatalogFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}: {report.summary()}")
    for line, error in report.errors[:max_errors]:
        click.echo(f"  line {line}: {error}", err=True)
    if len(report.errors) > max_errors:
        click.echo(f"  ... and {len(report.errors) - max_errors} more", err=True)
    if report.errors and not report.stored:
        raise click.ClickException("no valid records found")


def init_app(app: Flask) -> None:
    app.cli.add_command(catalog_cli)
    app.cli.add_command(eval_command)
    app.cli.add_command(model_cli)
    app.cli.add_command(simulate_command)
    app.cli.add_command(admin_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(ranker_cli)
    app.cli.add_command(signals_cli)
    app.cli.add_command(search_log_cli)
    app.cli.add_command(synonyms_cli)
    app.cli.add_command(rules_cli)
