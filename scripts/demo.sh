#!/usr/bin/env bash
# Runs the demo: migrates, seeds, then the web server and a Celery worker until Ctrl-C.
# Uses the embedded defaults (SQLite, filesystem broker) unless DATABASE_URL/CELERY_BROKER_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
mkdir -p "${VAR_DIR:-var}"

$PY manage.py migrate --noinput -v 0
$PY manage.py seed_demo

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping the demo..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A webapp worker -Q generation,training --concurrency 1 --loglevel WARNING &
pids+=($!)
$PY manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)

echo
echo "  The demo is up at http://127.0.0.1:$PORT/  (admin at http://127.0.0.1:$PORT/admin/)"
echo "  Logins are printed above. Ctrl-C stops everything."
echo
wait -n "${pids[@]}"
