"""The catalog import use case: validate a file, upsert its good records by external id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from engine.catalog.readers import read_catalog
from engine.catalog.records import ProductRecord
from webapp.extensions import db
from webapp.models import Product, utcnow

CHUNK = 500
Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.created + self.updated + self.unchanged

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {len(self.errors)} rejected"
        )

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [{"line": line, "error": error} for line, error in self.errors],
        }


def _apply(product: Product, record: ProductRecord) -> bool:
    """Copy changed fields onto the product; True when anything changed."""
    changed = False
    for name, value in record.fields().items():
        if getattr(product, name) != value:
            setattr(product, name, value)
            changed = True
    return changed


def _upsert_chunk(records: list[ProductRecord], report: ImportReport) -> None:
    # A later line wins when the same id appears twice in one file, as in a bulk load.
    latest = {r.external_id: r for r in records}
    existing = {p.external_id: p for p in db.session.scalars(select(Product).where(Product.external_id.in_(latest)))}
    now = utcnow()
    for external_id, record in latest.items():
        product = existing.get(external_id)
        if product is None:
            db.session.add(Product(external_id=external_id, created_at=now, updated_at=now, **record.fields()))
            report.created += 1
        elif _apply(product, record):
            product.updated_at = now  # the web workers' index sync keys on this
            report.updated += 1
        else:
            report.unchanged += 1


def import_catalog(path: str | Path, progress: Progress | None = None) -> ImportReport:
    """Import a catalog file; bad records are reported, good ones stored.

    Commits per chunk: progress is then real, a huge file never holds one long write lock,
    and a crash loses nothing already stored. Re-running is safe because it is an upsert.
    Raises engine.catalog.readers.CatalogFileError when the file as a whole is unreadable.
    """
    parsed = read_catalog(path)
    report = ImportReport(errors=[(p.line, p.error) for p in parsed if p.error])
    good = [p.record for p in parsed if p.record is not None]
    try:
        for start in range(0, len(good), CHUNK):
            _upsert_chunk(good[start : start + CHUNK], report)
            db.session.commit()
            if progress:
                progress(min(start + CHUNK, len(good)), len(good))
    except Exception:
        db.session.rollback()
        raise
    return report
