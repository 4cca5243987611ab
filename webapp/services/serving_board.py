"""Each worker's card of what it serves, in INSTANCE_DIR/serving/, for any worker's health to show.

A worker's follower (webapp.services.serving_follower) rewrites its card when what it serves
changes and every CARD_HEARTBEAT_SECONDS; a card not rewritten for CARD_STALE_SECONDS is a
stopped worker's and is not shown. After an activation, the cards say which workers have
swapped and since when.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from webapp.services.serving_follower import ServingSnapshot

CARD_HEARTBEAT_SECONDS = 2.0  # a worker rewrites its card at least this often
CARD_STALE_SECONDS = 15.0  # a card not rewritten for this long is a stopped worker's


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def worker_card(snapshot: ServingSnapshot, now: float | None = None) -> dict:
    """What a worker serves, as its health body and its card on the shared board show it."""
    now = now or time.time()
    return {
        "worker": worker_name(),
        "version_id": snapshot.version_id,
        "serving_since": _round(snapshot.version_since),
        "loading": snapshot.loading,
        "catalog_seq": snapshot.catalog_seq,
        "snapshot_age_s": _round(snapshot.age(now)),
        "error": snapshot.error,
    }


class ServingBoard:
    """This worker's card in the board's directory, rewritten when it changes or grows old."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / f"{worker_name().replace(':', '-')}.json"
        self._written: tuple | None = None
        self._written_at = float("-inf")

    def write(self, snapshot: ServingSnapshot) -> None:
        key = (snapshot.version_id, snapshot.version_since, snapshot.loading, snapshot.error, snapshot.catalog_seq)
        if key == self._written and time.monotonic() - self._written_at < CARD_HEARTBEAT_SECONDS:
            return
        card = worker_card(snapshot)
        card.pop("snapshot_age_s")  # readers compute it from synced_at
        card["synced_at"] = snapshot.synced_at
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(card))
        partial.replace(self.path)  # readers never see half a card
        self._written, self._written_at = key, time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def board_directory() -> str:
    return os.path.join(current_app.config["INSTANCE_DIR"], "serving")


def read_board(directory: str, now: float | None = None) -> list[dict]:
    """The cards of the workers alive on this host (rewritten within CARD_STALE_SECONDS)."""
    now = now or time.time()
    cards = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            if now - path.stat().st_mtime > CARD_STALE_SECONDS:
                continue
            card = json.loads(path.read_text())
        except (OSError, ValueError):  # removed or replaced while read: the next look sees it
            continue
        synced = card.pop("synced_at", None)
        card["snapshot_age_s"] = _round(None if synced is None else max(0.0, now - synced))
        cards.append(card)
    return cards
