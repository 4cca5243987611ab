"""Command line for the stage-2 context ranker: `flask --app webapp ranker fit|show`."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from webapp.models import ContextRankerFit
from webapp.services.context_fit import CHUNK, active_fit, fit_context_ranker_from_logs, fit_history

ranker_cli = AppGroup("ranker", help="Fit and inspect the stage-2 context ranker.")
LONG_READ = 4 * CHUNK  # searches: below this the read takes a moment and a bar would only flicker


class _LazyBar:
    """A progress bar that appears only once the read turns out to be long."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None and total >= LONG_READ:
            self.bar = click.progressbar(length=total, label="Reading logged pages", show_pos=True)
            self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def echo_fit(row: ContextRankerFit) -> None:
    """One fit: status, metrics, and the weights from the largest effect down."""
    click.echo(f"fit {row.id} ({row.status}) at {row.created_at:%Y-%m-%d %H:%M:%S} UTC on {row.pages} logged searches")
    for key, value in (row.metrics or {}).items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        click.echo(f"  {key}: {shown}")
    weights = (row.weights or {}).get("weights", {})
    if weights:
        click.echo("  weights:")
        for name, weight in sorted(weights.items(), key=lambda item: -abs(item[1])):
            click.echo(f"    {name:<18} {weight:+.4f}")
        click.echo(f"    {'explore bonus':<18} {row.weights.get('explore_bonus', 0.0):+.4f} (policy, not fitted)")


@ranker_cli.command("fit")
def fit_command() -> None:
    """Fit the context ranker on logged searches now, in this process (the worker's beat does it on a schedule)."""
    progress = _LazyBar()
    try:
        row = fit_context_ranker_from_logs(progress)
    finally:
        progress.close()
    echo_fit(row)
    if row.status == "active":
        click.echo("Active: web workers pick it up within CONTEXT_RANKER_CHECK_SECONDS.")
    else:
        click.echo(f"Refused, serving is unchanged: {row.metrics.get('refused', '?')}")


@ranker_cli.command("show")
@click.option("--history", default=10, show_default=True, help="How many recent fits to list.")
def show_command(history: int) -> None:
    """The active fit's metrics and weights, and the recent fits."""
    row = active_fit()
    if row is None:
        click.echo("No active context ranker: stage 2 logs features but keeps the stage-1 order.")
    else:
        echo_fit(row)
    if history > 0:
        click.echo("recent fits:")
        for fit in fit_history(history):
            reason = f" ({fit.metrics.get('refused')})" if fit.status == "refused" else ""
            loss, alone = fit.metrics.get("holdout_loss"), fit.metrics.get("holdout_loss_relevance_only")
            shown = f"{loss:.4f} vs {alone:.4f} alone" if isinstance(loss, float) and isinstance(alone, float) else "–"
            click.echo(f"  {fit.id:>5} {fit.created_at:%Y-%m-%d %H:%M} {fit.status:<8} held-out loss {shown}{reason}")
