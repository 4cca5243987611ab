#!/usr/bin/env bash
# Bring the whole system up on the embedded default: SQLite database, Celery over kombu's
# SQLAlchemy transport on SQLite (no service to install), one worker, Celery beat (the
# schedules in webapp/services/schedule_runs.py), gunicorn in front.
# Set DATABASE_URL / CELERY_BROKER_URL to use PostgreSQL / Redis instead.
# Stops everything it started on Ctrl-C, SIGTERM, or when either process dies.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
export KAIROS_INSTANCE_DIR=${KAIROS_INSTANCE_DIR:-$PWD/instance}
HOST=${KAIROS_HOST:-127.0.0.1}
PORT=${KAIROS_PORT:-8000}
BIN=.venv/bin
mkdir -p "$KAIROS_INSTANCE_DIR"

echo "Migrating the database..."
"$BIN/flask" --app webapp db upgrade
echo "Importing the demo catalog (a re-run changes nothing)..."
"$BIN/flask" --app webapp catalog import
echo "Queueing model version 1 (zero-shot MiniLM) unless one exists; search is lexical until it is built..."
"$BIN/flask" --app webapp model bootstrap

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Celery's warm shutdown waits for a running build, which can take minutes; after 10 s
  # kill it: the task is acknowledged late, so the next start redoes it from a clean directory.
  for _ in $(seq 20); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do pkill -KILL -P "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

"$BIN/celery" -A worker.celery_app worker -Q inference,training --concurrency 1 --loglevel INFO \
  >"$KAIROS_INSTANCE_DIR/worker.log" 2>&1 &
pids+=($!)
# One beat for the schedules (fine-tune check, stage-2 refit, experiment snapshots); its state
# file keeps each entry's last run across restarts.
"$BIN/celery" -A worker.celery_app beat --loglevel INFO --schedule "$KAIROS_INSTANCE_DIR/celerybeat-schedule" \
  >"$KAIROS_INSTANCE_DIR/beat.log" 2>&1 &
pids+=($!)
"$BIN/gunicorn" --config gunicorn.conf.py --bind "$HOST:$PORT" "webapp:create_app()" &
pids+=($!)

# Announce the URL only once the storefront really answers.
url="http://$HOST:$PORT/"
if ! "$BIN/python" - "${url}api/health" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as reply:
            sys.exit(0 if reply.status == 200 else 1)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
EOF
then
  echo "Kairos did not come up on $url; see the output above and $KAIROS_INSTANCE_DIR/worker.log" >&2
  exit 1
fi
echo
echo "Kairos storefront: $url   (logs: $KAIROS_INSTANCE_DIR/worker.log, beat.log)"
echo "Press Ctrl-C to stop."

# Any process ending brings the others down too: half a system is worse than none.
set +e
wait -n "${pids[@]}"
status=$?
echo "A Kairos process ended (status $status); stopping the rest." >&2
exit "$status"
