"""Impression counts: summed in each web worker and written by its own background thread.

Every search shows about 24 products. Writing their 24 decayed counts in the search's own
transaction cost more than the search; writing a second's worth from the request that
happened to be due made that request the slow one (p99) and held SQLite's single writer
lock for tens of milliseconds while other searches waited to log themselves. So a search
only adds its products to this worker's buffer, and a daemon thread writes the buffer every
SIGNAL_IMPRESSION_FLUSH_SECONDS in transactions of FLUSH_CHUNK products.

A worker killed between flushes loses at most that interval of impression counts, never an
impression: those are rows of the impressions table, written with the search, and
`flask signals rebuild` recounts from them. A graceful stop flushes (gunicorn.conf.py). With
the interval at 0 (the tests) counts are written in the search's transaction instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import db
from webapp.services.signals import record_impressions

FLUSH_CHUNK = 200  # products per transaction: each holds the database's writer lock only briefly
MAX_HELD = 200_000  # (product, time) pairs kept through a database outage before the oldest go

log = logging.getLogger(__name__)


class ImpressionBuffer:
    """This worker's impressions not yet written, and the thread that writes them."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, float]] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()  # set by stop_impression_writer: the thread ends at its next wake
        self.pid = os.getpid()

    def add(self, shown: Iterable[tuple[int, float]]) -> None:
        with self.lock:
            self.pending.extend(shown)

    def take(self) -> list[tuple[int, float]]:
        with self.lock:
            taken, self.pending = self.pending, []
            return taken

    def give_back(self, shown: list[tuple[int, float]]) -> None:
        """Keep pairs a failed flush could not write, ahead of newer ones, within MAX_HELD."""
        with self.lock:
            self.pending = (shown + self.pending)[-MAX_HELD:]

    def ensure_writer(self, app: Flask, interval: float) -> None:
        """Start the writing thread in this process unless it runs (a forked worker starts its own)."""
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        with self.lock:
            if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.stopping = threading.Event()
            self.thread = threading.Thread(
                target=_write_every, args=(app, self, interval, self.stopping), name="impression-flush", daemon=True
            )
            self.thread.start()


def buffer_for(app: Flask) -> ImpressionBuffer:
    return app.extensions.setdefault("kairos.impression_buffer", ImpressionBuffer())


def count_impressions(product_ids: Iterable[int], at: float) -> bool:
    """Count one impression per product shown at `at`: held for the worker's next flush (or written now at 0 s).

    True when written now, into the session's transaction: the caller commits it."""
    shown = [(pid, at) for pid in product_ids]
    interval = current_app.config["SIGNAL_IMPRESSION_FLUSH_SECONDS"]
    if interval <= 0:
        record_impressions(shown)  # in the search's transaction
        return True
    app = current_app._get_current_object()
    buffer = buffer_for(app)
    buffer.add(shown)
    buffer.ensure_writer(app, interval)
    return False


def flush_impressions(app: Flask) -> int:
    """Write what this worker holds, FLUSH_CHUNK products per transaction; returns how many pairs were written."""
    buffer = buffer_for(app)
    taken = buffer.take()
    if not taken:
        return 0
    # Chunk by product so each transaction writes whole rows, in a stable order.
    times: dict[int, list[float]] = {}
    for pid, at in taken:
        times.setdefault(pid, []).append(at)
    products = sorted(times)
    written = 0
    with app.app_context():
        try:
            for start in range(0, len(products), FLUSH_CHUNK):
                chunk = [(pid, at) for pid in products[start : start + FLUSH_CHUNK] for at in times[pid]]
                try:
                    record_impressions(chunk)
                    db.session.commit()
                except SQLAlchemyError:
                    db.session.rollback()
                    buffer.give_back([(pid, at) for pid in products[start:] for at in times[pid]])  # next flush retries
                    raise
                written += len(chunk)
        finally:
            db.session.remove()
    return written


def stop_impression_writer(app: Flask, timeout: float = 10.0) -> int:
    """Stop this worker's writing thread and write what it still holds (a worker's exit, an app's
    teardown): a thread left running would keep flushing into a database that is gone (in the
    tests, one whose tables were dropped: "no such table: product_signals"). Returns pairs written."""
    buffer = buffer_for(app)
    thread = buffer.thread
    if thread is not None and buffer.pid == os.getpid():
        buffer.stopping.set()
        thread.join(timeout)
    return flush_impressions(app)


def _write_every(app: Flask, buffer: ImpressionBuffer, interval: float, stopping: threading.Event) -> None:
    while not stopping.wait(interval):
        try:
            flush_impressions(app)
        except SQLAlchemyError as exc:  # the database is away: counts stay held, searches go on
            log.warning("impression counts not written, kept for the next flush: %s", exc)
        except Exception:  # a bug must not silently stop counting for the life of the worker
            log.exception("impression flush failed; retrying in %.1f s", interval)
