"""Task modules; importing this package registers every task."""

from worker.tasks import catalog, experiments, inference, jobs, ranking, training  # noqa: F401
