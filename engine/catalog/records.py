"""Validation of one catalog record into the fields the shop stores.

A record remembers which fields its row carried (`present`): an import changes only those
on a product it already has, so a title-only row never wipes a brand, a price or an image.
Every text is checked for what a database refuses (NUL characters, lone surrogates), every
number for its range, and list fields may hold only plain values.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_LIMITS = {"title": 500, "brand": 200, "color": 100, "category_path": 500, "image_url": 1000}
_TEXT_LIMIT = 20_000  # description and bullet points: generous, but bounded
# Where a catalog file may say when a product was first listed (the shop's own date).
LISTED_FIELDS = ("listed_at", "created_at", "date_first_available")
# The model fields a row carries when it names any of these keys.
_SOURCES = {
    "title": ("title", "name"),
    "brand": ("brand",),
    "description": ("description",),
    "bullet_points": ("bullet_points",),
    "category_path": ("category_path", "category"),
    "color": ("color",),
    "price": ("price",),
    "rating": ("rating",),
    "rating_count": ("rating_count",),
    "image_url": ("image_url", "image"),
    "in_stock": ("in_stock",),
    "is_active": ("is_active",),
}


class RecordError(ValueError):
    """A record that cannot be stored; the message names the field and the reason."""


@dataclass(frozen=True)
class ProductRecord:
    external_id: str
    title: str
    brand: str = ""
    description: str = ""
    bullet_points: str = ""
    category_path: str = ""
    color: str = ""
    price: float | None = None
    rating: float | None = None
    rating_count: int = 0
    image_url: str = ""
    in_stock: bool = True
    is_active: bool = True
    listed_at: datetime | None = None  # naive UTC, from the file; None when it does not say
    present: frozenset[str] = field(default_factory=lambda: frozenset(_SOURCES))

    def fields(self) -> dict:
        """The record as a plain dict of model fields (without the external id)."""
        data = asdict(self)
        for name in ("external_id", "listed_at", "present"):
            data.pop(name)
        return data

    def given_fields(self) -> dict:
        """Only the model fields the row carried: what an update of an existing product changes."""
        return {name: value for name, value in self.fields().items() if name in self.present}


def _plain(name: str, value: object) -> str:
    """A scalar as text fit to store: no NUL characters, no lone surrogates."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"{name} must be text or a list of text")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{name} must be text, not {value}")
    text = str(value).replace("\x00", "").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(f"{name} holds a lone surrogate ({text[exc.start]!a}), which is not text") from None
    return text


def _text(doc: dict, *names: str, limit: int) -> str:
    for name in names:
        value = doc.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            parts = (_plain(name, v) for v in value if v is not None)
            value = "\n".join(p for p in parts if p)
        value = _plain(name, value)
        if len(value) > limit:
            raise RecordError(f"{name} is longer than {limit} characters")
        return value
    return ""


def _number(doc: dict, name: str, low: float, high: float) -> float | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{name} must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$").replace(",", ""))
        except ValueError:
            raise RecordError(f"{name} must be a number, got {value[:40]!r}") from None
    if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        raise RecordError(f"{name} must be a number")
    if not low <= value <= high:  # compared before converting: a huge integer does not fit a float
        shown = f"{value:g}" if isinstance(value, float) else str(value)[:20] + ("..." if len(str(value)) > 20 else "")
        raise RecordError(f"{name} must be between {low:g} and {high:g}, got {shown}")
    return float(value)


def _category(doc: dict) -> str:
    value = doc.get("category_path", doc.get("category"))
    if value is None:
        return ""
    if isinstance(value, str):
        parts = re.split(r"\s*(?:>|\|)\s*", value)
    elif isinstance(value, list):
        parts = [_plain("category", v) for v in value if v is not None]
    else:
        raise RecordError("category must be a list or a 'A > B' path")
    path = _plain("category", " > ".join(p.strip() for p in parts if p and p.strip()))
    if len(path) > _LIMITS["category_path"]:
        raise RecordError(f"category is longer than {_LIMITS['category_path']} characters")
    return path


def _flag(doc: dict, name: str) -> bool:
    """A yes/no field that is true when absent or empty."""
    value = doc.get(name, True)
    if value is None or isinstance(value, bool):
        return value is not False
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "0", "false", "no", ""}:
        return value.strip().lower() in {"1", "true", "yes", ""}
    raise RecordError(f"{name} must be true or false")


def _listed_at(doc: dict) -> datetime | None:
    """When the file says the product was first listed: ISO 8601 or epoch seconds (naive: UTC)."""
    name = next((n for n in LISTED_FIELDS if doc.get(n) not in (None, "")), None)
    if name is None:
        return None
    value = doc[name]
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str) and len(value) <= 40:
            moment = datetime.fromisoformat(value.strip())
            moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise RecordError(f"{name} must be an ISO 8601 date or epoch seconds") from None
    if not 1990 <= moment.year <= 2100:
        raise RecordError(f"{name} must be a date between 1990 and 2100")
    return moment.replace(tzinfo=None)


def validate_record(doc: object, fallback_id: str | None = None) -> ProductRecord:
    """Turn one raw document into a ProductRecord, or raise RecordError saying why not."""
    if not isinstance(doc, dict):
        raise RecordError("record must be a JSON object")
    external_id = doc.get("external_id") or doc.get("asin") or doc.get("id") or fallback_id
    if isinstance(external_id, dict | list | bool | float):
        raise RecordError("external id must be text")
    if external_id is None or str(external_id).strip() == "":
        raise RecordError("missing external id (external_id, asin or id)")
    external_id = str(external_id).strip()
    if not _EXTERNAL_ID.match(external_id):
        raise RecordError(f"external id {external_id[:40]!r} must be 1-64 letters, digits or ._:-")
    title = _text(doc, "title", "name", limit=_LIMITS["title"])
    if not title:
        raise RecordError("missing title")
    image_url = _text(doc, "image_url", "image", limit=_LIMITS["image_url"])
    if image_url and not image_url.startswith(("https://", "http://")):
        raise RecordError("image must be an http(s) URL")
    rating_count = _number(doc, "rating_count", 0, 2**31 - 1)  # the column is a 32-bit integer
    if rating_count is not None and rating_count != int(rating_count):
        raise RecordError("rating_count must be a whole number")
    return ProductRecord(
        external_id=external_id,
        title=title,
        brand=_text(doc, "brand", limit=_LIMITS["brand"]),
        description=_text(doc, "description", limit=_TEXT_LIMIT),
        bullet_points=_text(doc, "bullet_points", limit=_TEXT_LIMIT),
        category_path=_category(doc),
        color=_text(doc, "color", limit=_LIMITS["color"]),
        price=_number(doc, "price", 0, 1e9),
        rating=_number(doc, "rating", 0, 5),
        rating_count=int(rating_count or 0),
        image_url=image_url,
        in_stock=_flag(doc, "in_stock"),
        is_active=_flag(doc, "is_active"),
        listed_at=_listed_at(doc),
        present=frozenset(name for name, keys in _SOURCES.items() if any(k in doc for k in keys)),
    )
