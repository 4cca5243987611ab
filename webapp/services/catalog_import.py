"""The catalog import use case: validate a file, upsert its good records by external id.

What an import changes, and what it leaves alone:

- A new external id creates a product with the row's fields (absent ones take the defaults).
- An existing product changes only in the fields its row carries (a title-only row updates
  the title and nothing else; a CSV cell left empty is not carried). A JSON `null` is carried
  and clears the field.
- Hiding is the admin's decision: a row never shows a product the admin hid unless the import
  is asked to (`reactivate=True`, the CLI's `--reactivate`). A row with `"is_active": false`
  does hide its product.
- The first import into an empty catalog, and any import marked `established=True`
  (`--established`), brings products that were on sale before: they are not "new arrivals"
  (no new-product bonus) unless the file gives their own listing date (`listed_at`,
  `created_at` or `date_first_available`), which a product carries whenever the file has it.

The file is streamed in chunks; each chunk is one transaction. A record the database still
refuses is found by storing that chunk row by row, and reported at its line with the reason,
so one bad record never costs the good ones around it. The report always says what was stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from engine.catalog.readers import CatalogFileError, ReadLimits, count_lines, iter_catalog
from engine.catalog.records import ProductRecord
from webapp.extensions import db
from webapp.models import Product, utcnow

CHUNK = 500
MAX_REPORTED_ERRORS = 1000  # the report lists this many bad lines and counts the rest
Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    kept_hidden: int = 0  # rows that would have shown a product the admin hid
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.created + self.updated + self.unchanged

    def reject(self, line: int, error: str) -> None:
        """Count a bad record; list it while the list is short enough to read."""
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((line, error))

    def summary(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {self.rejected} rejected"
        return text + (f", {self.kept_hidden} kept hidden" if self.kept_hidden else "")

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stored": self.stored,
            "rejected": self.rejected,
            "kept_hidden": self.kept_hidden,
            "errors": [{"line": line, "error": error} for line, error in self.errors],
        }


@dataclass(frozen=True)
class ImportOptions:
    """How an import treats what is already there (module docstring)."""

    reactivate: bool = False  # rows may show products the admin hid
    established: bool | None = None  # None: only when the catalog is empty at the start


def _apply(product: Product, record: ProductRecord, options: ImportOptions, report: ImportReport) -> bool:
    """Copy the row's changed fields onto the product; True when anything changed."""
    values = record.given_fields()
    if values.get("is_active") and not product.is_active and not options.reactivate:
        values.pop("is_active")
        report.kept_hidden += 1
    if record.listed_at is not None:
        values["listed_at"] = record.listed_at
    changed = False
    for name, value in values.items():
        if getattr(product, name) != value:
            setattr(product, name, value)
            changed = True
    return changed


def _upsert(rows: list[tuple[int, ProductRecord]], established: bool, options: ImportOptions, report: ImportReport):
    # A later line wins when the same id appears twice in one chunk, as in a bulk load.
    latest = {record.external_id: record for _, record in rows}
    existing = {p.external_id: p for p in db.session.scalars(select(Product).where(Product.external_id.in_(latest)))}
    now = utcnow()
    for external_id, record in latest.items():
        product = existing.get(external_id)
        if product is None:
            listed = record.listed_at or (None if established else now)
            product = Product(external_id=external_id, created_at=now, updated_at=now, listed_at=listed)
            for name, value in record.fields().items():
                setattr(product, name, value)
            db.session.add(product)
            report.created += 1
        elif _apply(product, record, options, report):
            product.updated_at = now  # the web workers' index sync keys on this
            report.updated += 1
        else:
            report.unchanged += 1
    db.session.flush()


def _store_chunk(rows: list[tuple[int, ProductRecord]], established: bool, options: ImportOptions, report):
    """One transaction for the chunk; if the database refuses it, row by row to find the culprits."""
    counts = (report.created, report.updated, report.unchanged, report.kept_hidden)
    try:
        _upsert(rows, established, options, report)
        db.session.commit()
        return
    except (DataError, IntegrityError, StatementError, UnicodeError, ValueError):
        db.session.rollback()
        report.created, report.updated, report.unchanged, report.kept_hidden = counts
    for line, record in rows:
        counts = (report.created, report.updated, report.unchanged, report.kept_hidden)
        try:
            _upsert([(line, record)], established, options, report)
            db.session.commit()
        except (DataError, IntegrityError, StatementError, UnicodeError, ValueError) as exc:
            db.session.rollback()
            report.created, report.updated, report.unchanged, report.kept_hidden = counts  # it was not stored
            reason = getattr(exc, "orig", None) or exc
            report.reject(line, f"the database refused it: {str(reason).splitlines()[0][:200]}")


def import_records(
    parsed: Iterable, total: int = 0, progress: Progress | None = None, options: ImportOptions | None = None
) -> ImportReport:
    """Store parsed lines (engine.catalog.readers.ParsedLine) in chunks; bad ones are reported."""
    options = options or ImportOptions()
    established = options.established
    if established is None:  # the first import of a catalog: products the shop already sold
        established = not db.session.scalar(select(exists().where(Product.id.is_not(None))))
    report = ImportReport()
    chunk: list[tuple[int, ProductRecord]] = []
    last_line, reported = 0, -1
    try:
        for item in parsed:
            last_line = item.line
            if item.record is None:
                report.reject(item.line, item.error or "unreadable record")
            else:
                chunk.append((item.line, item.record))
            if len(chunk) >= CHUNK:
                _store_chunk(chunk, established, options, report)
                chunk = []
                if progress:
                    reported = min(last_line, total or last_line)
                    progress(reported, total or last_line)
        if chunk:
            _store_chunk(chunk, established, options, report)
    except CatalogFileError as exc:  # the file broke off (a damaged zip) after some chunks were stored
        db.session.rollback()
        if report.stored or report.rejected:
            raise CatalogFileError(f"{exc}; before it: {report.summary()}") from None
        raise
    except Exception:
        db.session.rollback()
        raise
    if progress and reported != (total or last_line):
        progress(total or last_line, total or last_line)
    return report


def import_catalog(
    path: str | Path,
    progress: Progress | None = None,
    options: ImportOptions | None = None,
    limits: ReadLimits | None = None,
) -> ImportReport:
    """Import a catalog file; bad records are reported by line, good ones stored (module docstring).

    Commits per chunk: progress is then real, a huge file never holds one long write lock,
    and a crash loses nothing already stored. Re-running is safe because it is an upsert.
    Raises engine.catalog.readers.CatalogFileError when the file as a whole is unreadable
    (checked before anything is stored).
    """
    total = count_lines(path, limits) if progress else 0
    return import_records(iter_catalog(path, limits), total, progress, options)


def read_limits(config: dict) -> ReadLimits:
    """The import's file limits from the app's config (KAIROS_IMPORT_*)."""
    return ReadLimits(
        max_file_bytes=int(config["IMPORT_MAX_BYTES"]),
        max_zip_ratio=float(config["IMPORT_MAX_ZIP_RATIO"]),
        max_line_bytes=int(config["IMPORT_MAX_LINE_BYTES"]),
    )
