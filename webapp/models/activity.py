"""What shoppers do: visitors, searches, impressions and events."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

EVENT_TYPES = ("click", "add_to_cart", "purchase")


class Visitor(db.Model):
    """An anonymous shopper, identified by a random id kept in a signed cookie."""

    __tablename__ = "visitors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # When they last cleared their history: a search answered before it but stored after it
    # (webapp.services.search_log writes after the response) is stored unlinked, as the rest.
    history_cleared_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When their purchase or cart rate passed the plausible bound (webapp.services.feedback_trust):
    # from then on every event of theirs is stored flagged, out of learning, signals and experiments.
    feedback_flagged_at: Mapped[datetime | None] = mapped_column(DateTime)
    feedback_flag_reason: Mapped[str | None] = mapped_column(String(200))
    # Their purchases and add-to-carts in the current rate window, counted on the row so that
    # clearing their history (which unlinks their events) does not reset the count.
    rate_window_at: Mapped[datetime | None] = mapped_column(DateTime)
    window_purchases: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    window_add_to_carts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SearchQuery(db.Model):
    """One results page served: the query, its filters and how it went."""

    __tablename__ = "search_queries"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[str | None] = mapped_column(ForeignKey("visitors.id"), index=True)
    text: Mapped[str] = mapped_column(String(200))
    normalized: Mapped[str] = mapped_column(String(200), index=True)
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    sort: Mapped[str] = mapped_column(String(20), default="relevance")
    page: Mapped[int] = mapped_column(Integer, default=1)
    result_count: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(20), default="storefront")
    fuzzy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # answered with near spellings
    # The spelling correction the page answered instead of `text` (webapp.services.spelling); null: none.
    corrected_text: Mapped[str | None] = mapped_column(String(200))
    # A keyed hash of the client's network (webapp.services.client_hash): suggestions count distinct
    # addresses without storing one.
    client_hash: Mapped[str | None] = mapped_column(String(16))
    # The A/B variant that served this search, if the visitor was in a running experiment.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("experiment_variants.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class SuggestionBlock(db.Model):
    """A word or phrase the admin keeps out of suggestions and the home page's popular searches."""

    __tablename__ = "suggestion_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    phrase: Mapped[str] = mapped_column(String(200), unique=True)  # normalized (webapp.services.search_params)
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SuggestionReview(db.Model):
    """A suggestible query the admin looked at and kept; the review list shows the others."""

    __tablename__ = "suggestion_reviews"

    normalized: Mapped[str] = mapped_column(String(200), primary_key=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(254))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Order(db.Model):
    """A demo checkout: what a visitor bought, at which prices (no payment is taken)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[str | None] = mapped_column(ForeignKey("visitors.id"), index=True)
    # [{"product_id", "title", "quantity", "price"}]: the lines as bought, kept if products change.
    lines: Mapped[list] = mapped_column(JSON, default=list)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class IdBlock(db.Model):
    """The next id to hand out for a table whose ids web workers reserve before writing the row.

    Searches are answered with their id (clicks refer to it) but written after the response
    (webapp.services.search_log), so each worker reserves ids in blocks. PostgreSQL takes them
    from the table's own sequence; SQLite has none, so this row is its sequence.
    """

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_id: Mapped[int] = mapped_column(Integer)


class Impression(db.Model):
    """A product shown at a position for a search; the unit that feedback is judged against."""

    __tablename__ = "impressions"
    __table_args__ = (UniqueConstraint("search_id", "position", name="uq_impressions_search_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("search_queries.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    ranker: Mapped[str] = mapped_column(String(64), default="lexical")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    # Stage 2's feature values as the shopper saw them: the context ranker is fitted on these.
    features: Mapped[dict | None] = mapped_column(JSON)
    # "pin" or "boost" when a query rule put the product at this position (engine.merchandising.rules):
    # training data and the click model do not read an imposed position as relevance. Null: ranked.
    imposed: Mapped[str | None] = mapped_column(String(8))


class Event(db.Model):
    """A click, add-to-cart or purchase, tied to the search and position where known."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(20), index=True)
    visitor_id: Mapped[str | None] = mapped_column(ForeignKey("visitors.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    search_id: Mapped[int | None] = mapped_column(ForeignKey("search_queries.id"), index=True)
    position: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # When it happened as the client says (clamped to the policy); null: at created_at.
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Sent by a visitor beyond the plausible purchase or cart rate: kept for the record, never
    # learned from, counted in signals or in experiment metrics (webapp.services.feedback_trust).
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The recommendation list it came from (webapp.services.recommendation_log), like search_id for a page.
    recommendation_id: Mapped[int | None] = mapped_column(ForeignKey("recommendation_lists.id"), index=True)


class ProductView(db.Model):
    """A product page a visitor was shown, recorded by the server: an event without a search
    must name a product its visitor was shown (here, or in one of their searches' results)."""

    __tablename__ = "product_views"
    __table_args__ = (UniqueConstraint("visitor_id", "product_id", name="uq_product_views_visitor_product"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    viewed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
