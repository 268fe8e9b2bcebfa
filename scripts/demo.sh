#!/usr/bin/env bash
# Runs the demo: migrates, seeds, starts the web server, then a worker per queue and beat, and
# queues the first comparisons; all of it until Ctrl-C.
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

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping the demo..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # A worker finishes its current task on TERM; a long sampling run is cut after 10 s.
  for _ in $(seq 20); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT

LOGS="${VAR_DIR:-var}/demo-logs"
mkdir -p "$LOGS"
# The site first: it answers before any comparison is sampled, and the home page says how many
# are ready and that more are being written. Each process logs to a file, so the logins below stay
# on the screen.
$PY manage.py runserver --noreload "127.0.0.1:$PORT" >"$LOGS/web.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
  $PY -c "import urllib.request; urllib.request.urlopen('$URL/accounts/login/', timeout=1)" 2>/dev/null && break
  sleep 0.5
done

# One worker per queue, one task at a time each, so a round (queue "training") never waits behind
# sampling (queue "generation"). On a small machine the two share its cores while both are busy.
.venv/bin/celery --quiet -A webapp worker -Q generation --hostname generation@%h --pool solo --concurrency 1 \
  --loglevel WARNING >"$LOGS/worker-generation.log" 2>&1 &
pids+=($!)
.venv/bin/celery --quiet -A webapp worker -Q training --hostname training@%h --pool solo --concurrency 1 \
  --loglevel WARNING >"$LOGS/worker-training.log" 2>&1 &
pids+=($!)
# Beat checks every 5 minutes whether enough new rankings arrived to start a round (editable in
# the admin under "Periodic tasks").
.venv/bin/celery --quiet -A webapp beat --loglevel WARNING >"$LOGS/beat.log" 2>&1 &
pids+=($!)

# Queued, not run here: 4 prompts first, so there is something to rank soon (the first run also
# converts the bundled model to safetensors), then the rest of the 50 demo prompts.
$PY manage.py sample_comparisons --project "$DEMO_PROJECT" --prompts 4
$PY manage.py sample_comparisons --project "$DEMO_PROJECT" --prompts 1000

cat <<TXT

  The demo is up:
    labeling   $URL/            (log in as the labeler, rank, write ideal answers)
    training   $URL/training/   (log in as the admin: the project's home, rounds, learning curve)
    admin      $URL/admin/      (projects and their recipe, prompts, versions, runs)
$logins
  The first comparisons are being written now: the labeler's home page counts them as they come.
  Every 20 rankings a round retrains the model; follow it on the project's home.
  Logs: $LOGS/ (web.log, worker-generation.log, worker-training.log, beat.log).
  Ctrl-C stops the web server, the workers and beat.

TXT
wait -n "${pids[@]}"
