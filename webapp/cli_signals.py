"""`flask signals rebuild`: replay the database's impressions and events into the signal store."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from webapp.services.co_occurrence import rebuild_pairs
from webapp.services.signal_rebuild import rebuild_signals

signals_cli = AppGroup("signals", help="The decayed trending counts (stage-2 ranking signals).")


@signals_cli.command("rebuild")
def rebuild_command() -> None:
    """Clear the counts (bought-together pairs too) and rebuild them from the stored impressions and events."""
    with click.progressbar(length=1, label="Replaying", show_pos=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        counts = rebuild_signals(progress)
    baskets = rebuild_pairs()
    click.echo(
        f"replayed {counts['impressions']} impressions of {counts['searches']} searches and {counts['events']} events"
    )
    click.echo(f"replayed {baskets} cart and purchase events into the bought-together counts")
