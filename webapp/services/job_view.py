"""A job as a person reads it: its message said once, its result as labelled rows, and the
version it produced when that version waits to be activated. Presentation only: the job row
is unchanged."""

from __future__ import annotations

import json
import math
import re

from webapp.extensions import db
from webapp.filters import duration, number
from webapp.models import Job, ModelVersion

_PROGRESS = re.compile(r"^(\d+) of (\d+)$")
# Shown elsewhere on the page (or only the worker's bookkeeping), never as result rows.
_HIDDEN = {"logs", "heartbeat", "refused", "next_step"}
MAX_DEPTH = 2


def shown_message(job: Job) -> str:
    """The message, unless it repeats the error or the refusal, or is a progress count the finished job outgrew."""
    message = job.message or ""
    if (job.error and job.error.startswith(message)) or message == (job.result or {}).get("refused"):
        return ""  # the error, or the refusal, is shown in its own place
    progress = _PROGRESS.match(message)
    if progress and job.status == "succeeded":
        return f"done ({progress.group(2)} of {progress.group(2)})"
    return message


def _text(key: str, value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return number(value)
    if isinstance(value, float):
        if key.endswith("seconds"):
            return duration(value)
        return f"{value:.4g}" if math.isfinite(value) else "–"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value) and len(value) <= 12:
        return ", ".join(_text(key, v) for v in value) or "–"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))[:300]
    return str(value)


def result_rows(result: dict | None, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """(label, text) per result entry; nested dicts become "outer › inner" rows, two levels deep."""
    rows: list[tuple[str, str]] = []
    for key, value in (result or {}).items():
        if depth == 0 and key in _HIDDEN:
            continue
        label = f"{prefix}{str(key).replace('_', ' ')}"
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            rows.extend(result_rows(value, f"{label} › ", depth + 1))
        else:
            rows.append((label, _text(str(key), value)))
    return rows


def ready_version(job: Job) -> ModelVersion | None:
    """The version this job built when it is ready and not serving: what "Activate" would serve."""
    version_id = (job.result or {}).get("version_id") or (job.params or {}).get("version_id")
    if job.status != "succeeded" or not isinstance(version_id, int):
        return None
    version = db.session.get(ModelVersion, version_id)
    return version if version is not None and version.status in ("ready", "retired") else None
