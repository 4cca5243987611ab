"""Task modules; importing this package registers every task."""

from worker.tasks import catalog, experiments, inference, jobs, ranking, training, tuning  # noqa: F401
