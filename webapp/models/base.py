"""Shared column helpers for the typed models."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC timestamp: SQLite has no time zones, so every column stores UTC by contract."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch(moment: datetime) -> float:
    """Epoch seconds of a naive-UTC column value (the signal counts and ranking clocks use these)."""
    return moment.replace(tzinfo=UTC).timestamp()
