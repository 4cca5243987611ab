"""Decayed signal counts shared by every web worker, and the fitted stage-2 rankers.

A count is stored as (value at stamp) for the short and the long half-life; adding an
event is one upsert whose arithmetic runs in the database (webapp.services.signals), so
concurrent writers never lose an update. Each upsert also stamps its rows with the next
number of the signal feed (SignalFeed), so web workers mirror "rows numbered after N" in
commit order, however late a transaction commits and whatever its updated_at says.
"""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String
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
    # The signal feed number (SignalFeed.head) of the last write to the row.
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)


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
    # The signal feed number (SignalFeed.head) of the last write to the row.
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)


class SignalFeed(db.Model):
    """The signal feed's counter: one row whose head is the newest number handed out.

    A writer takes the next number with one UPDATE ... RETURNING (webapp.services.signals),
    which holds the row's lock to its commit: signal writers take turns on it, so their
    numbers commit in order (the catalog feed's advisory lock, done with the row itself).
    A counter instead of a row per change keeps a table written on every event from growing.
    """

    __tablename__ = "signal_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    head: Mapped[int] = mapped_column(BigInteger, default=0)


class ContextRankerFit(db.Model):
    """One fit of the stage-2 ranker on logged feedback; at most one is active."""

    __tablename__ = "context_rankers"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    weights: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
