"""A rebuild the serving follower starts in a thread of its own (suggestions, spelling).

Reading a large catalog takes a second or more; in the follower's own thread it would hold
back the catalog sync that long. One rebuild of a kind runs at a time (its lock, never waited
on); a failed one leaves the previous index answering, and the next due step tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import current_app

log = logging.getLogger(__name__)


def start_rebuild(lock: threading.Lock, name: str, body: Callable[[], None]) -> threading.Thread | None:
    """Run `body` in a daemon thread within this app's context, unless `lock` says one is running."""
    if not lock.acquire(blocking=False):
        return None
    app = current_app._get_current_object()

    def rebuild() -> None:
        try:
            with app.app_context():
                body()
        except Exception:  # the previous index keeps answering; the next due step tries again
            log.exception("%s failed", name)
        finally:
            lock.release()

    thread = threading.Thread(target=rebuild, name=name, daemon=True)
    thread.start()
    return thread
