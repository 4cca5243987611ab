"""Catalog file formats: OpenSearch _bulk ndjson, JSON Lines and CSV, plain or zipped.

Every reader yields one ParsedLine per record with the 1-based line number where the
record starts, so an import can store the good records and name the bad lines.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.catalog.records import ProductRecord, RecordError, validate_record

MAX_FILE_BYTES = 512 * 1024 * 1024  # refuse anything larger, zipped or unzipped
_BULK_ACTIONS = ("index", "create")
_MEMBER_SUFFIXES = (".ndjson", ".jsonl", ".json", ".csv")


class CatalogFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, size)."""


@dataclass(frozen=True)
class ParsedLine:
    line: int
    record: ProductRecord | None
    error: str | None = None


def _read_text(path: Path) -> tuple[str, str]:
    """Return (text, inner file name), unzipping a .zip and refusing oversize content."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CatalogFileError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB")
    name = path.name
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.lower().endswith(_MEMBER_SUFFIXES)]
            if len(members) != 1:
                raise CatalogFileError(f"{path.name} must hold exactly one .ndjson, .jsonl or .csv file")
            member = members[0]
            # The declared size guards against zip bombs before anything is inflated.
            if member.file_size > MAX_FILE_BYTES:
                raise CatalogFileError(f"{member.filename} unzips to more than {MAX_FILE_BYTES // 2**20} MiB")
            raw = archive.read(member)[: MAX_FILE_BYTES + 1]
            name = member.filename
    else:
        raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), name
    except UnicodeDecodeError as exc:
        raise CatalogFileError(f"{name} is not UTF-8 text (byte {exc.start})") from None


def _validated(line: int, doc: object, fallback_id: str | None = None) -> ParsedLine:
    try:
        return ParsedLine(line, validate_record(doc, fallback_id))
    except RecordError as exc:
        return ParsedLine(line, None, str(exc))


def _json_lines(text: str) -> Iterator[tuple[int, object | None, str | None]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw), None
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc.msg}"


def _is_bulk_action(doc: object) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and next(iter(doc)) in _BULK_ACTIONS + ("delete", "update")


def read_bulk(text: str) -> Iterator[ParsedLine]:
    """OpenSearch _bulk: an action line ({"index": {"_id": ...}}) then the document line."""
    pending: tuple[int, str | None] | None = None
    for number, doc, error in _json_lines(text):
        if error:
            yield ParsedLine(number, None, error)
            pending = None
            continue
        if pending is not None and _is_bulk_action(doc):
            # The previous action lost its document; this line starts a new pair.
            yield ParsedLine(pending[0], None, "bulk action line has no document after it")
            pending = None
        if pending is None:
            if not _is_bulk_action(doc):
                yield ParsedLine(number, None, 'expected a bulk action line such as {"index": {...}}')
                continue
            action, meta = next(iter(doc.items()))
            if action not in _BULK_ACTIONS:
                yield ParsedLine(number, None, f"bulk action {action!r} is not supported (use index or create)")
                continue
            doc_id = meta.get("_id") if isinstance(meta, dict) else None
            pending = (number, None if doc_id is None else str(doc_id))
            continue
        _, doc_id = pending
        pending = None
        yield _validated(number, doc, doc_id)
    if pending is not None:
        yield ParsedLine(pending[0], None, "bulk action line has no document after it")


def read_json_lines(text: str) -> Iterator[ParsedLine]:
    """One JSON object per line."""
    for number, doc, error in _json_lines(text):
        yield ParsedLine(number, None, error) if error else _validated(number, doc)


def read_csv(text: str) -> Iterator[ParsedLine]:
    """A header row naming the fields, then one product per row (quoted newlines allowed)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((cells for cells in reader if cells), None)
    if not header:
        return
    names = [name.strip().lower() for name in header]
    # A row starts on the line after the previous one ended; blank lines only move that on.
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not cells:
            continue
        if len(cells) > len(names):
            yield ParsedLine(line, None, "row has more cells than the header")
        else:
            yield _validated(line, {k: v for k, v in zip(names, cells, strict=False) if v != ""})


def read_catalog(path: str | Path) -> list[ParsedLine]:
    """Read a catalog file of any supported format into parsed lines."""
    path = Path(path)
    if not path.is_file():
        raise CatalogFileError(f"{path} is not a file")
    text, name = _read_text(path)
    if name.lower().endswith(".csv"):
        return list(read_csv(text))
    first = next((raw for raw in text.splitlines() if raw.strip()), "")
    try:
        looks_bulk = _is_bulk_action(json.loads(first)) if first else False
    except json.JSONDecodeError:
        looks_bulk = False
    return list(read_bulk(text) if looks_bulk else read_json_lines(text))
