"""Celery workers: batched inference and training. Entrypoint: worker/celery_app.py."""
