"""Typed SQLAlchemy models, split by domain."""

from webapp.models.activity import EVENT_TYPES, Event, Impression, SearchQuery, Visitor
from webapp.models.base import utcnow
from webapp.models.catalog import PRODUCT_FIELDS, Product
from webapp.models.ml import JOB_STATUSES, MODEL_STATUSES, Job, ModelVersion

__all__ = [
    "EVENT_TYPES",
    "JOB_STATUSES",
    "MODEL_STATUSES",
    "PRODUCT_FIELDS",
    "Event",
    "Impression",
    "Job",
    "ModelVersion",
    "Product",
    "SearchQuery",
    "Visitor",
    "utcnow",
]
