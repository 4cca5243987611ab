"""Recommendation lists as served (logged like search pages) and the co-occurrence counts behind them."""

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

RECOMMENDATION_CONTEXTS = ("product", "cart", "home")


class PairSignal(db.Model):
    """Decayed count of sessions that carted or bought both products; (p, p) is p's own basket count.

    Kept like ProductSignal (values at the short and long half-life as of `stamp`, one upsert per
    increment whose decay runs in the database), written with the events that count.
    """

    __tablename__ = "pair_signals"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    short: Mapped[float] = mapped_column(Float, default=0.0)
    long: Mapped[float] = mapped_column(Float, default=0.0)
    stamp: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class RecommendationList(db.Model):
    """One recommendation list served: where, for whom, which strategy; events refer to its id."""

    __tablename__ = "recommendation_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[str | None] = mapped_column(ForeignKey("visitors.id"), index=True)
    context: Mapped[str] = mapped_column(String(20))  # product, cart or home
    name: Mapped[str] = mapped_column(String(30))  # the list on the page: similar, bought_together, for_you, trending
    strategy: Mapped[str] = mapped_column(String(30))  # how it was chosen (an experiment compares these)
    anchor_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class RecommendationItem(db.Model):
    """A product shown at a position of a recommendation list, with what chose it (its features)."""

    __tablename__ = "recommendation_items"
    __table_args__ = (UniqueConstraint("recommendation_id", "position", name="uq_recommendation_items_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recommendation_id: Mapped[int] = mapped_column(ForeignKey("recommendation_lists.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(30))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    features: Mapped[dict | None] = mapped_column(JSON)
