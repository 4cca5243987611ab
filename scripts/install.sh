#!/usr/bin/env bash
# Create .venv and install the pinned requirements (torch from the local CPU wheel when present).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, on its own: pip then takes the local CPU wheel instead of a CUDA build.
  "$VENV/bin/pip" install -q "$(grep '^torch==' requirements.txt)"
  "$VENV/bin/pip" install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
