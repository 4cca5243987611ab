"""Typed SQLAlchemy models, split by domain."""

from webapp.models import product_changes  # noqa: F401  (registers the price-cut / restock flush hook)
from webapp.models.activity import (
    EVENT_TYPES,
    Event,
    IdBlock,
    Impression,
    Order,
    ProductView,
    SearchQuery,
    SuggestionBlock,
    SuggestionReview,
    Visitor,
)
from webapp.models.admin import ADMIN_ROLES, AdminUser
from webapp.models.base import epoch, utcnow
from webapp.models.catalog import PRODUCT_FIELDS, CatalogChange, Product
from webapp.models.experiments import (
    EXPERIMENT_STATUSES,
    Experiment,
    ExperimentAssignment,
    ExperimentSnapshot,
    ExperimentVariant,
)
from webapp.models.merchandising import QueryRule, Synonym
from webapp.models.ml import JOB_STATUSES, MODEL_STATUSES, Job, ModelVersion
from webapp.models.recommendations import (
    RECOMMENDATION_CONTEXTS,
    PairSignal,
    RecommendationItem,
    RecommendationList,
)
from webapp.models.schedule import ScheduleRun
from webapp.models.signals import CONTEXT_RANKER_STATUSES, ContextRankerFit, ProductSignal, QuerySignal, SignalFeed

__all__ = [
    "ADMIN_ROLES",
    "CONTEXT_RANKER_STATUSES",
    "ContextRankerFit",
    "ProductSignal",
    "SignalFeed",
    "QuerySignal",
    "EXPERIMENT_STATUSES",
    "AdminUser",
    "CatalogChange",
    "Experiment",
    "ExperimentAssignment",
    "ExperimentSnapshot",
    "ExperimentVariant",
    "EVENT_TYPES",
    "JOB_STATUSES",
    "MODEL_STATUSES",
    "PRODUCT_FIELDS",
    "Event",
    "IdBlock",
    "Impression",
    "Job",
    "ModelVersion",
    "Order",
    "PairSignal",
    "RECOMMENDATION_CONTEXTS",
    "RecommendationItem",
    "RecommendationList",
    "Product",
    "ProductView",
    "QueryRule",
    "ScheduleRun",
    "SearchQuery",
    "SuggestionBlock",
    "Synonym",
    "SuggestionReview",
    "Visitor",
    "epoch",
    "utcnow",
]
