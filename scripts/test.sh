#!/usr/bin/env bash
# The whole test suite, twice: on SQLite (everything, browser included), then on PostgreSQL
# (every test that is not a browser or slow-model test). Starts Redis and PostgreSQL when
# they are not answering, and installs Debian chromium when run as root.
# Extra arguments go to both pytest runs, e.g. scripts/test.sh -x -k migrations.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PY=${VENV:-.venv}/bin/python
PG_URL=${KAIROS_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
is_root() { [ "$(id -u)" -eq 0 ]; }
say() { printf '\n== %s\n' "$*"; }
[ -x "$PY" ] || ./scripts/install.sh  # `make test` has done this already; a direct call may not have

redis_answers() {
  # A real PING, not just an open port: bash's /dev/tcp needs no client installed.
  local reply=""
  exec 3<>/dev/tcp/127.0.0.1/6379 || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == +PONG* ]]
} 2>/dev/null

postgres_answers() {
  # Connects to the maintenance database and creates the test database when it is missing.
  "$PY" - "$PG_URL" <<'EOF'
import sys
import psycopg
from sqlalchemy.engine import make_url

url = make_url(sys.argv[1])
params = dict(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
              password=url.password, connect_timeout=3)
with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
        conn.execute(f'CREATE DATABASE "{url.database}"')
EOF
} 2>/dev/null

wait_for() {  # wait_for CHECK SECONDS
  local i
  for ((i = 0; i < $2 * 4; i++)); do "$1" && return 0; sleep 0.25; done
  return 1
}

say "Services"
if redis_answers; then
  echo "Redis answers on 127.0.0.1:6379"
else
  if ! command -v redis-server >/dev/null && is_root; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  fi
  echo "Starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for redis_answers 10 || { echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
fi

if postgres_answers; then
  echo "PostgreSQL answers: $PG_URL"
else
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    echo "PostgreSQL is not answering at $PG_URL and no cluster is installed in /etc/postgresql;" >&2
    echo "install PostgreSQL (trust auth for postgres on 127.0.0.1) or set KAIROS_TEST_DATABASE_URL." >&2
    exit 1
  fi
  echo "Starting PostgreSQL $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for postgres_answers 30 || { echo "PostgreSQL did not answer at $PG_URL" >&2; exit 1; }
fi

if [ -x /usr/bin/chromium ]; then
  echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null)"
elif is_root; then
  echo "Installing Debian chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
else
  echo "No /usr/bin/chromium and not root: the browser tests will be skipped (apt-get install chromium)."
fi

status=0
started=$SECONDS
say "Pass 1 of 2: the whole suite on SQLite"
env -u KAIROS_TEST_DATABASE_URL "$PY" -m pytest "$@" || status=1
pass1=$((SECONDS - started))

say "Pass 2 of 2: unit and integration tests on PostgreSQL ($PG_URL)"
KAIROS_TEST_DATABASE_URL=$PG_URL "$PY" -m pytest -m "not browser and not slow" "$@" || status=1
pass2=$((SECONDS - started - pass1))

say "SQLite pass ${pass1}s, PostgreSQL pass ${pass2}s: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
