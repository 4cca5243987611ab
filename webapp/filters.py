"""Jinja filters for the pages: durations, counts and times as a reader says them."""

from __future__ import annotations

import math
from datetime import datetime

from flask import Flask


def duration(seconds: object) -> str:
    """Seconds as "45 s", "1 min 5 s", "2 h 10 min" or "3 days 4 h" ("–" when unknown)."""
    try:
        value = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(value):
        return "–"
    if value < 10:
        return f"{value:.1f} s"
    total = round(value)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def number(value: object, digits: int = 0) -> str:
    """A number with thousands separators and a fixed number of decimals (821220 -> "821,220")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def stamp(value: datetime | str | None) -> str:
    """A time as "2026-12-04 19:05:31" (UTC, seconds; ISO strings too)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.rstrip("Z"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S")


def init_app(app: Flask) -> None:
    """Register the filters on the app's Jinja environment."""
    app.add_template_filter(duration, "duration")
    app.add_template_filter(number, "number")
    app.add_template_filter(stamp, "datetime")
