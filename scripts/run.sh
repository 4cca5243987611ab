#!/usr/bin/env bash
# Bring the whole system up on the embedded default: SQLite database, Celery over kombu's
# SQLAlchemy transport on SQLite (no service to install), one worker, gunicorn in front.
# Set DATABASE_URL / CELERY_BROKER_URL to use PostgreSQL / Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
export KAIROS_INSTANCE_DIR=${KAIROS_INSTANCE_DIR:-$PWD/instance}
HOST=${KAIROS_HOST:-127.0.0.1}
PORT=${KAIROS_PORT:-8000}
mkdir -p "$KAIROS_INSTANCE_DIR"
BIN=.venv/bin

"$BIN/flask" --app webapp db upgrade
"$BIN/flask" --app webapp catalog import            # the demo catalog; a re-run changes nothing

"$BIN/celery" -A worker.celery_app worker -Q inference,training --concurrency 1 --loglevel INFO \
  >"$KAIROS_INSTANCE_DIR/worker.log" 2>&1 &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null || true' EXIT INT TERM

echo "Kairos storefront: http://$HOST:$PORT/   (worker log: $KAIROS_INSTANCE_DIR/worker.log)"
"$BIN/gunicorn" --config gunicorn.conf.py --bind "$HOST:$PORT" "webapp:create_app()"
