"""The shop team's merchandising: synonyms for lexical retrieval and query rules (engine.merchandising)."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow


class Synonym(db.Model):
    """One synonyms.txt line: equivalent terms (targets empty) or terms => targets."""

    __tablename__ = "synonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    terms: Mapped[list] = mapped_column(JSON)  # normalized terms, each one or more words
    targets: Mapped[list] = mapped_column(JSON, default=list)  # empty: the terms are equivalent
    updated_by: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class QueryRule(db.Model):
    """For a query (exact, or containing a phrase): pins, hides, boosts or a redirect, in an optional window."""

    __tablename__ = "query_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(String(200), index=True)  # normalized (webapp.services.search_params)
    match: Mapped[str] = mapped_column(String(10), default="exact")  # engine.merchandising.rules.MATCHES
    pins: Mapped[list] = mapped_column(JSON, default=list)  # [[product id, position], ...]
    hides: Mapped[list] = mapped_column(JSON, default=list)  # [product id, ...]
    boosts: Mapped[list] = mapped_column(JSON, default=list)  # [{"field", "value", "weight"}, ...]
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime)  # UTC; null: no start
    ends_at: Mapped[datetime | None] = mapped_column(DateTime)  # UTC, exclusive; null: no end
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    note: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
