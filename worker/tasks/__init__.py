"""Task modules; importing this package registers every task."""

from worker.tasks import catalog, experiments, inference, ranking, training, tuning  # noqa: F401
