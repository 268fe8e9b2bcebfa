#!/usr/bin/env bash
# Does a round help? One full round on the bundled model, from scratch, judged on held-out prompts.
#
#   bash benchmarks/learning_check.sh [ALGORITHM] [PREFERENCE] [RANKINGS]
#
# ALGORITHM is the project's `algorithm` (rloo, ppo or dpo; default rloo), PREFERENCE a
# module:callable(prompt, completions) -> scores (default: labeling.demo.preferences:plain_words),
# RANKINGS how many simulated rankings the round trains on (default 50). In a fresh folder
# (var/learning-check, its own SQLite database and model store): the demo project's 50 prompts are
# sampled (K=4, 64 new tokens; cached in var/learning-check-cache after the first time, sampling is
# seeded), simulated labelers rank them by PREFERENCE with Plackett-Luce noise 0.5, one `run_round`
# trains the reward model and the policy step with the project's default settings, then samples 50
# new comparisons from the new policy. `evaluate_policy` gives the new policy's win rate over the
# base on the 24 held-out prompts, judged by PREFERENCE, and the KL of the new policy to the base is
# measured on its samples of them. Prints the steps' output, then one JSON line of figures.
set -euo pipefail
cd "$(dirname "$0")/.."
ALGORITHM=${1:-rloo}
PREFERENCE=${2:-labeling.demo.preferences:plain_words}
RANKINGS=${3:-50}
export VAR_DIR=var/learning-check DJANGO_ENV=development
CACHE=var/learning-check-cache
PY=.venv/bin/python
PROJECT="Demo: helpful answers"

rm -rf "$VAR_DIR" && mkdir -p "$VAR_DIR"
if [ -f "$CACHE/demo.sqlite3" ]; then
  cp -r "$CACHE"/. "$VAR_DIR"/
  $PY manage.py migrate --noinput -v 0
else
  $PY manage.py migrate --noinput -v 0
  $PY manage.py seed_demo >/dev/null
  $PY manage.py shell -c "
from training.models import Recipe
Recipe.objects.filter(project__name='$PROJECT').update(max_new_tokens=64)"
  $PY manage.py sample_comparisons --project "$PROJECT" --prompts 50 --sync
  echo
  rm -rf "$CACHE" && mkdir -p "$CACHE" && cp -r "$VAR_DIR"/. "$CACHE"/
fi
$PY manage.py shell -c "
from training.models import Recipe
Recipe.objects.filter(project__name='$PROJECT').update(algorithm='$ALGORITHM', ppo_config={'max_new_tokens': 64})"
$PY manage.py simulate_labelers --project "$PROJECT" --preference "$PREFERENCE" --rankings "$RANKINGS" --noise 0.5
started=$(date +%s)
$PY manage.py run_round --project "$PROJECT" --sync
round_seconds=$(( $(date +%s) - started ))
$PY manage.py evaluate_policy --project "$PROJECT" --preference "$PREFERENCE" \
  --prompts labeling/demo/heldout_prompts.jsonl --limit 24
$PY manage.py shell -c "
import json
from pathlib import Path
from benchmarks.policy_kl import kl_to_base
from labeling.importing import prompt_texts_from_jsonl
from labeling.models import Project
from training.models import RewardModelVersion, TrainingRun
project = Project.objects.get(name='$PROJECT')
round_ = TrainingRun.objects.filter(kind='round').latest('id')
steps = {s.kind: s for s in round_.steps.all()}
policy_step = steps['$ALGORITHM']
logged = [m for m in policy_step.metrics if 'step' in m and 'loss' in m or 'score' in m]
seconds = lambda run: (run.finished_at - run.started_at).total_seconds()
rm = RewardModelVersion.objects.latest('id')
evaluation = TrainingRun.objects.filter(kind='eval').latest('id').metrics[-1]
prompts = prompt_texts_from_jsonl(Path('labeling/demo/heldout_prompts.jsonl'))[:24]
print(json.dumps({
    'algorithm': '$ALGORITHM', 'preference': '$PREFERENCE', 'rankings': rm.rankings_count,
    'rm_heldout_accuracy': rm.heldout_accuracy, 'policy_steps': len(logged),
    'first': {k: v for k, v in logged[0].items() if isinstance(v, (int, float))},
    'last': {k: v for k, v in logged[-1].items() if isinstance(v, (int, float))},
    'heldout_prompts': evaluation['n'], 'win_rate_new_over_base': evaluation['win_rate_b_over_a'],
    'kl_to_base': kl_to_base(project, prompts),
    'seconds': {kind: round(seconds(run)) for kind, run in steps.items()}, 'round_seconds': $round_seconds,
}))"
