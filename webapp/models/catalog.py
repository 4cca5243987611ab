"""The product catalog."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import utcnow

# Fields an import may set; the importer and the index both read this one list.
PRODUCT_FIELDS = (
    "title",
    "brand",
    "description",
    "bullet_points",
    "category_path",
    "color",
    "price",
    "rating",
    "rating_count",
    "image_url",
    "in_stock",
)


class Product(db.Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    brand: Mapped[str] = mapped_column(String(200), default="", index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    bullet_points: Mapped[str] = mapped_column(Text, default="")
    category_path: Mapped[str] = mapped_column(String(500), default="")
    color: Mapped[str] = mapped_column(String(100), default="")
    price: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[float | None] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    image_url: Mapped[str] = mapped_column(String(1000), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Set by webapp.models.product_changes when a save cuts the price or restocks the product.
    price_dropped_at: Mapped[datetime | None] = mapped_column(DateTime)
    price_drop: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    restocked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # When the product was first listed, as its catalog file says (or when the shop added it): the
    # age that freshness and the new-product bonus read. None: not known, so never "new" (an
    # established catalog's first import; webapp.services.catalog_import).
    listed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Indexed: every web worker polls "changed since" to keep its in-memory index fresh.
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    def to_dict(self) -> dict:
        """The public view of a product used by the API and the index."""
        data = {name: getattr(self, name) for name in PRODUCT_FIELDS}
        data.update(id=self.id, external_id=self.external_id, is_active=self.is_active)
        return data


class CatalogChange(db.Model):
    """One product saved, numbered in commit order: the feed web workers read as "changes after N".

    Written in the transaction that saves the product (webapp.models.product_changes), so a
    change and its number commit together, however late and whatever its updated_at says.
    """

    __tablename__ = "catalog_changes"
    # SQLite: AUTOINCREMENT, so a number is never handed out twice even after the newest rows are pruned.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer)  # no foreign key: the feed outlives what it names
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
