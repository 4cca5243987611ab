"""Parse and validate search parameters from a query string into a SearchRequest."""

from __future__ import annotations

import math
import re
import unicodedata

from werkzeug.datastructures import MultiDict

from engine.serving.lexical import Filters
from engine.serving.searcher import SORTS, SearchRequest
from webapp.errors import InputError

MAX_QUERY_CHARS = 200
MAX_PAGE = 50
MAX_BRANDS = 20
# Every C0 control, tab and newline included (a pasted multi-line query): spaces in the log and the index.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_query(text: str) -> str:
    """Canonical form of a query for analytics and caching: NFKC, lower case, single spaces."""
    # NFKC can lengthen text (one "\ufdfa" becomes 18 characters): keep it within the column.
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())[:MAX_QUERY_CHARS]


def _float(args: MultiDict, name: str, low: float, high: float) -> float | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{name} must be a number") from None
    if math.isnan(value) or not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}")
    return value


def parse_search_args(args: MultiDict, page_size: int) -> SearchRequest:
    """Build a SearchRequest or raise InputError naming the bad parameter."""
    text = args.get("q", "")
    if len(text) > MAX_QUERY_CHARS:
        raise InputError(f"q must be at most {MAX_QUERY_CHARS} characters")
    text = _CONTROL.sub(" ", text).strip()
    page_raw = args.get("page", "1").strip() or "1"
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (page_raw.isascii() and page_raw.isdigit()) or not 1 <= int(page_raw) <= MAX_PAGE:
        raise InputError(f"page must be a whole number from 1 to {MAX_PAGE}")
    sort = args.get("sort", "relevance") or "relevance"
    if sort not in SORTS:
        raise InputError(f"sort must be one of {', '.join(SORTS)}")
    brands = tuple(dict.fromkeys(b.strip() for b in args.getlist("brand") if b.strip()))
    if len(brands) > MAX_BRANDS or any(len(b) > 200 for b in brands):
        raise InputError(f"at most {MAX_BRANDS} brands of up to 200 characters")
    price_min = _float(args, "price_min", 0, 1e9)
    price_max = _float(args, "price_max", 0, 1e9)
    if price_min is not None and price_max is not None and price_min > price_max:
        raise InputError("price_min must not exceed price_max")
    rating_min = _float(args, "rating_min", 0, 5)
    filters = Filters(brands=brands, price_min=price_min, price_max=price_max, rating_min=rating_min)
    return SearchRequest(text=text, filters=filters, sort=sort, page=int(page_raw), page_size=page_size)


def parse_spell_arg(args: MultiDict) -> bool:
    """Whether to correct the query's spelling: `spell=0` searches the text as typed ("search instead for")."""
    raw = args.get("spell", "1").strip() or "1"
    if raw not in ("0", "1"):
        raise InputError("spell must be 0 or 1")
    return raw == "1"
