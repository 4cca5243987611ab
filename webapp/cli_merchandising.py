"""Command line for merchandising: `flask --app webapp synonyms import FILE|export`, `flask --app webapp rules list`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.errors import InputError
from webapp.services.merchandising_admin import export_synonyms, import_synonyms, list_rules

synonyms_cli = AppGroup("synonyms", help="Manage search synonyms (Solr synonyms.txt format).")
rules_cli = AppGroup("rules", help="Read the query rules.")


@synonyms_cli.command("import")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--by", default="cli", show_default=True, help="Who to record as having saved them.")
def import_command(path, by: str) -> None:
    """Replace every synonym with FILE's; a bad line refuses the whole file (every bad line is listed)."""
    try:
        count = import_synonyms(path.read(), by)
    except InputError as exc:
        for detail in exc.details:
            click.echo(f"{path.name}:{detail['line']}: {detail['error']}", err=True)
        raise click.ClickException(f"{len(exc.details) or 1} bad lines; nothing was changed") from None
    click.echo(f"Saved {count} synonym rules.")


@synonyms_cli.command("export")
def export_command() -> None:
    """Print every synonym as synonyms.txt."""
    click.echo(export_synonyms(), nl=False)


@rules_cli.command("list")
def list_command() -> None:
    """Print every query rule: id, match, query, what it does, window, status."""
    for r in list_rules():
        does = []
        if r.pins:
            does.append("pins " + ",".join(f"{p}@{pos}" for p, pos in r.pins))
        if r.hides:
            does.append(f"hides {len(r.hides)}")
        if r.boosts:
            does.append(" ".join(f"{'+' if b['weight'] > 0 else '-'}{b['field']}:{b['value']}" for b in r.boosts))
        if r.redirect_url:
            does.append(f"-> {r.redirect_url}")
        window = f"{r.starts_at or '-'} .. {r.ends_at or '-'}"
        status = "enabled" if r.enabled else "disabled"
        click.echo(f"{r.id}\t{r.match}\t{r.query}\t{'; '.join(does)}\t{window}\t{status}")
