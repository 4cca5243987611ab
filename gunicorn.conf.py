"""gunicorn settings for Kairos; override with GUNICORN_* environment variables."""

import os

# Each worker holds its own in-memory indexes; threads share them within a worker.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # unset: no access log on the hot path
