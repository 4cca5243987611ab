"""Validation of one catalog record into the fields the shop stores."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_LIMITS = {"title": 500, "brand": 200, "color": 100, "category_path": 500, "image_url": 1000}
_TEXT_LIMIT = 20_000  # description and bullet points: generous, but bounded


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

    def fields(self) -> dict:
        """The record as a plain dict of model fields (without the external id)."""
        data = asdict(self)
        data.pop("external_id")
        return data


def _text(doc: dict, *names: str, limit: int) -> str:
    for name in names:
        value = doc.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            value = "\n".join(str(v).strip() for v in value if v is not None and str(v).strip())
        if not isinstance(value, str | int | float):
            raise RecordError(f"{name} must be text")
        value = str(value).replace("\x00", "").strip()
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
    if not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise RecordError(f"{name} must be a number")
    if not low <= value <= high:
        raise RecordError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _category(doc: dict) -> str:
    value = doc.get("category_path", doc.get("category"))
    if value is None:
        return ""
    if isinstance(value, str):
        parts = re.split(r"\s*(?:>|\|)\s*", value)
    elif isinstance(value, list):
        parts = [str(v) for v in value]
    else:
        raise RecordError("category must be a list or a 'A > B' path")
    path = " > ".join(p.strip() for p in parts if p and p.strip())
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


def validate_record(doc: object, fallback_id: str | None = None) -> ProductRecord:
    """Turn one raw document into a ProductRecord, or raise RecordError saying why not."""
    if not isinstance(doc, dict):
        raise RecordError("record must be a JSON object")
    external_id = doc.get("external_id") or doc.get("asin") or doc.get("id") or fallback_id
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
    rating_count = _number(doc, "rating_count", 0, 1e12)
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
    )
