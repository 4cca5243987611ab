"""Catalog file formats: OpenSearch _bulk ndjson, JSON Lines and CSV, plain or zipped.

Files are streamed a line at a time, never held whole: every reader yields one ParsedLine
per record with the 1-based line number where the record starts, so an import can store
the good records and name the bad lines. Whatever one line holds (invalid UTF-8, nesting
deeper than the parser's stack, NaN, a number of thousands of digits, a line of hundreds of
megabytes) is that line's error, never the whole file's. Only what makes the file as a whole
unreadable raises CatalogFileError: its size, a zip bomb (declared size or compression ratio
beyond the limits), a zip without exactly one catalog member.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.catalog.csv_rows import Line, csv_rows
from engine.catalog.records import ProductRecord, RecordError, validate_record

MAX_FILE_BYTES = 512 * 1024 * 1024  # refuse anything larger, zipped or unzipped
MAX_ZIP_RATIO = 100  # uncompressed : compressed; catalog text compresses about 4:1
MAX_LINE_BYTES = 1024 * 1024  # a record (a CSV row across its quoted newlines) at most this long
_RATIO_FLOOR = 1024 * 1024  # members up to this size may compress any amount
_BULK_ACTIONS = ("index", "create")
_MEMBER_SUFFIXES = (".ndjson", ".jsonl", ".json", ".csv")
_BOM = "\ufeff"


class CatalogFileError(ValueError):
    """The file as a whole cannot be read (format, size, a zip bomb)."""


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on one catalog file: total (unzipped) size, zip compression ratio, record length."""

    max_file_bytes: int = MAX_FILE_BYTES
    max_zip_ratio: float = MAX_ZIP_RATIO
    max_line_bytes: int = MAX_LINE_BYTES


@dataclass(frozen=True)
class ParsedLine:
    line: int
    record: ProductRecord | None
    error: str | None = None


def default_limits() -> ReadLimits:
    """The module's limits as they are now (tests may patch them)."""
    return ReadLimits(MAX_FILE_BYTES, MAX_ZIP_RATIO, MAX_LINE_BYTES)


@contextmanager
def _open(path: Path, limits: ReadLimits) -> Iterator[tuple[IO[bytes], str]]:
    """The file's byte stream and inner name, unzipping a .zip; refuses oversize content first."""
    if not path.is_file():
        raise CatalogFileError(f"{path} is not a file")
    mib = limits.max_file_bytes / 2**20
    if path.stat().st_size > limits.max_file_bytes:
        raise CatalogFileError(f"{path.name} is larger than {mib:g} MiB")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as stream:
            yield stream, path.name
        return
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if m.filename.lower().endswith(_MEMBER_SUFFIXES)]
        if len(members) != 1:
            raise CatalogFileError(f"{path.name} must hold exactly one .ndjson, .jsonl or .csv file")
        member = members[0]
        # Declared sizes guard against zip bombs before anything is inflated; zipfile stops at the
        # declared size (and fails the CRC) should the data inflate further.
        if member.file_size > limits.max_file_bytes:
            raise CatalogFileError(f"{member.filename} unzips to more than {mib:g} MiB")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FLOOR and ratio > limits.max_zip_ratio:
            raise CatalogFileError(
                f"{member.filename} unzips {ratio:.0f} times larger than it is zipped (at most {limits.max_zip_ratio:g})"
            )
        with archive.open(member) as stream:
            yield stream, member.filename


def _lines(stream: IO[bytes], max_bytes: int) -> Iterator[Line]:
    """Decoded lines, numbered from 1; an overlong or non-UTF-8 line becomes its error."""
    number = 0
    while True:
        try:
            raw = stream.readline(max_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise CatalogFileError(f"the zip is damaged after line {number}: {exc}") from None
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while (rest := stream.readline(max_bytes)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the line without holding it
            yield number, None, f"line is longer than {max_bytes // 1024} KB"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, None, f"line is not valid UTF-8 (byte {exc.start + 1} of the line)"
            continue
        yield number, text.removeprefix(_BOM), None


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str) -> tuple[object | None, str | None]:
    try:
        return json.loads(text, parse_constant=_no_constants), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:  # NaN/Infinity, or an integer of more digits than Python converts
        return None, f"invalid JSON: {str(exc)[:80]}"


def _json_docs(lines: Iterable[Line]) -> Iterator[tuple[int, object | None, str | None]]:
    for number, text, error in lines:
        if error:
            yield number, None, error
        elif text is not None and text.strip():
            doc, error = _parse_json(text)
            yield number, doc, error


def _validated(line: int, doc: object, fallback_id: str | None = None) -> ParsedLine:
    try:
        return ParsedLine(line, validate_record(doc, fallback_id))
    except RecordError as exc:
        return ParsedLine(line, None, str(exc))


def _is_bulk_action(doc: object) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and next(iter(doc)) in _BULK_ACTIONS + ("delete", "update")


def read_bulk(lines: Iterable[Line]) -> Iterator[ParsedLine]:
    """OpenSearch _bulk: an action line ({"index": {"_id": ...}}) then the document line."""
    pending: tuple[int, str | None] | None = None
    for number, doc, error in _json_docs(lines):
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
            action, meta = next(iter(doc.items()))  # type: ignore[union-attr]
            if action not in _BULK_ACTIONS:
                yield ParsedLine(number, None, f"bulk action {action!r} is not supported (use index or create)")
                continue
            doc_id = meta.get("_id") if isinstance(meta, dict) else None
            pending = (number, None if doc_id is None or isinstance(doc_id, dict | list) else str(doc_id))
            continue
        _, doc_id = pending
        pending = None
        yield _validated(number, doc, doc_id)
    if pending is not None:
        yield ParsedLine(pending[0], None, "bulk action line has no document after it")


def read_json_lines(lines: Iterable[Line]) -> Iterator[ParsedLine]:
    """One JSON object per line."""
    for number, doc, error in _json_docs(lines):
        yield ParsedLine(number, None, error) if error else _validated(number, doc)


def read_csv(lines: Iterable[Line], max_bytes: int = MAX_LINE_BYTES) -> Iterator[ParsedLine]:
    """A header row naming the fields, then one product per row (quoted newlines allowed)."""
    rows = csv_rows(iter(lines), max_bytes)
    names: list[str] | None = None
    for line, cells, error in rows:
        if error:
            yield ParsedLine(line, None, error)
        elif not cells:
            continue
        elif names is None:
            names = [name.strip().lower() for name in cells]
        elif len(cells) > len(names):
            yield ParsedLine(line, None, "row has more cells than the header")
        else:
            yield _validated(line, {k: v for k, v in zip(names, cells, strict=False) if v != ""})


def _first_json(lines: Iterator[Line]) -> tuple[object | None, list[Line]]:
    """The first non-blank line's JSON (None when unreadable) and the lines read to find it."""
    seen: list[Line] = []
    for entry in lines:
        seen.append(entry)
        _, text, error = entry
        if error or (text is not None and text.strip()):
            doc = None if error or text is None else _parse_json(text)[0]
            return doc, seen
    return None, seen


def iter_catalog(path: str | Path, limits: ReadLimits | None = None) -> Iterator[ParsedLine]:
    """Stream a catalog file of any supported format as parsed lines (bounded memory)."""
    path = Path(path)
    limits = limits or default_limits()
    with _open(path, limits) as (stream, name):
        lines = _lines(stream, limits.max_line_bytes)
        if name.lower().endswith(".csv"):
            yield from read_csv(lines, limits.max_line_bytes)
            return
        first, seen = _first_json(lines)
        chained = (entry for part in (seen, lines) for entry in part)
        yield from read_bulk(chained) if _is_bulk_action(first) else read_json_lines(chained)


def check_catalog_file(path: str | Path, limits: ReadLimits | None = None) -> None:
    """Refuse at once what makes the whole file unreadable (size, zip bomb, members); reads no records."""
    with _open(Path(path), limits or default_limits()):
        pass


def read_catalog(path: str | Path, limits: ReadLimits | None = None) -> list[ParsedLine]:
    """Read a whole catalog file into parsed lines (for small files and tests; imports stream)."""
    return list(iter_catalog(path, limits))


def count_lines(path: str | Path, limits: ReadLimits | None = None) -> int:
    """How many lines the file holds (the total an import's progress counts toward)."""
    limits = limits or default_limits()
    count, last = 0, b"\n"
    with _open(Path(path), limits) as (stream, _):
        try:
            while chunk := stream.read(1024 * 1024):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise CatalogFileError(f"the zip is damaged: {exc}") from None
    return count + (last != b"\n")
