"""Decayed signal counts shared by every web worker, and the fitted stage-2 rankers.

A count is stored as (value at stamp) for the short and the long half-life; adding an
event is one upsert whose arithmetic runs in the database (webapp.services.signals), so
concurrent writers never lose an update. Web workers mirror changed rows by updated_at.
"""

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

CONTEXT_RANKER_STATUSES = ("active", "refused", "retired")


class ProductSignal(db.Model):
    __tablename__ = "product_signals"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    signal: Mapped[str] = mapped_column(String(20), primary_key=True)  # impression, click, add_to_cart, purchase
    short: Mapped[float] = mapped_column(Float, default=0.0)
    long: Mapped[float] = mapped_column(Float, default=0.0)
    stamp: Mapped[float] = mapped_column(Float, default=0.0)  # epoch seconds the values are as of
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class QuerySignal(db.Model):
    """What shoppers did with a product after searching a (normalized) query."""

    __tablename__ = "query_signals"

    query: Mapped[str] = mapped_column(String(200), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    signal: Mapped[str] = mapped_column(String(20), primary_key=True)
    short: Mapped[float] = mapped_column(Float, default=0.0)
    long: Mapped[float] = mapped_column(Float, default=0.0)
    stamp: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ContextRankerFit(db.Model):
    """One fit of the stage-2 ranker on logged feedback; at most one is active."""

    __tablename__ = "context_rankers"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    weights: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
