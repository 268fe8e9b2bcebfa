#!/usr/bin/env bash
# Runs the demo: migrates, seeds, then the web server, a Celery worker and beat until Ctrl-C.
# Uses the embedded defaults (SQLite, filesystem broker) unless DATABASE_URL/CELERY_BROKER_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
URL="http://127.0.0.1:$PORT"
mkdir -p "${VAR_DIR:-var}"

$PY manage.py migrate --noinput -v 0
logins=$($PY manage.py seed_demo)
DEMO_PROJECT="Demo: helpful answers"
# A few comparisons now, so there is work the moment the site is up (the first time, converting
# the bundled model takes about 20 s); the worker samples the rest in the background.
echo "Sampling the first comparisons with the bundled model..."
$PY manage.py sample_comparisons --project "$DEMO_PROJECT" --prompts 4 --sync

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping the demo..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # The worker finishes its current task on TERM; a long sampling run is cut after 10 s.
  for _ in $(seq 20); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT

.venv/bin/celery --quiet -A webapp worker -Q generation,training --pool solo --loglevel WARNING &
pids+=($!)
$PY manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)
# Beat checks every 5 minutes whether enough new rankings arrived to start a round (editable in
# the admin under "Periodic tasks").
.venv/bin/celery --quiet -A webapp beat --loglevel WARNING &
pids+=($!)

$PY manage.py sample_comparisons --project "$DEMO_PROJECT" --prompts 1000

for _ in $(seq 60); do
  $PY -c "import urllib.request; urllib.request.urlopen('$URL/accounts/login/', timeout=1)" 2>/dev/null && break
  sleep 0.5
done
cat <<TXT

  The demo is up at $URL/   (admin: $URL/admin/)
$logins
  Every 20 rankings a round retrains the model (follow it under Admin › Training runs).
  Ctrl-C stops the web server, the worker and beat.

TXT
wait -n "${pids[@]}"
