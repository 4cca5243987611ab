"""The admin's say over suggestions: block a word or phrase, lift a block, keep a reviewed query.

Each is one use case and one transaction. A block applies to the instant suggestions and the
storefront's popular searches alike (webapp.services.suggestions); web workers pick it up at
their next suggestion refresh (SUGGEST_REFRESH_SECONDS), the home page at once.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from webapp.errors import InputError
from webapp.extensions import db
from webapp.models import SuggestionBlock, SuggestionReview
from webapp.services.search_params import normalize_query

MAX_PHRASE_CHARS = 200


def block_phrase(raw: str, admin_email: str | None) -> str:
    """Add a normalized phrase to the blocklist (a no-op if it is there); returns the phrase stored."""
    if len(raw) > MAX_PHRASE_CHARS:
        raise InputError(f"A blocked phrase must be at most {MAX_PHRASE_CHARS} characters.")
    phrase = normalize_query(raw)
    if not phrase:
        raise InputError("Enter a word or phrase to block.")
    try:
        if db.session.scalar(select(SuggestionBlock.id).where(SuggestionBlock.phrase == phrase)) is None:
            db.session.add(SuggestionBlock(phrase=phrase, created_by=admin_email))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return phrase


def unblock(block_id: int) -> str | None:
    """Remove a blocklist entry; returns its phrase, or None if there was none."""
    block = db.session.get(SuggestionBlock, block_id)
    if block is None:
        return None
    phrase = block.phrase
    db.session.execute(delete(SuggestionBlock).where(SuggestionBlock.id == block_id))
    db.session.commit()
    return phrase


def keep_suggestion(raw: str, admin_email: str | None) -> str:
    """Mark a suggestible query as reviewed and kept: it leaves the review list."""
    normalized = normalize_query(raw[:MAX_PHRASE_CHARS])
    if not normalized:
        raise InputError("No query to keep.")
    if db.session.get(SuggestionReview, normalized) is None:
        db.session.add(SuggestionReview(normalized=normalized, reviewed_by=admin_email))
    db.session.commit()
    return normalized


def blocks() -> list[SuggestionBlock]:
    """The blocklist, alphabetically."""
    return list(db.session.scalars(select(SuggestionBlock).order_by(SuggestionBlock.phrase)))
