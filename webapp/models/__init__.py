"""Typed SQLAlchemy models, split by domain."""

from webapp.models.activity import EVENT_TYPES, Event, Impression, SearchQuery, Visitor
from webapp.models.admin import ADMIN_ROLES, AdminUser
from webapp.models.base import utcnow
from webapp.models.catalog import PRODUCT_FIELDS, Product
from webapp.models.experiments import (
    EXPERIMENT_STATUSES,
    Experiment,
    ExperimentAssignment,
    ExperimentSnapshot,
    ExperimentVariant,
)
from webapp.models.ml import JOB_STATUSES, MODEL_STATUSES, Job, ModelVersion

__all__ = [
    "ADMIN_ROLES",
    "EXPERIMENT_STATUSES",
    "AdminUser",
    "Experiment",
    "ExperimentAssignment",
    "ExperimentSnapshot",
    "ExperimentVariant",
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
