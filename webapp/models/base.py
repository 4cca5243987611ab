"""Shared column helpers for the typed models."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC timestamp: SQLite has no time zones, so every column stores UTC by contract."""
    return datetime.now(UTC).replace(tzinfo=None)
