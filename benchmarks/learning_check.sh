#!/usr/bin/env bash
# Does a round help? One full round on the bundled model, from scratch, judged on held-out prompts.
#
#   bash benchmarks/learning_check.sh [PREFERENCE] [RANKINGS]
#
# PREFERENCE is a module:callable(prompt, completions) -> scores (default: the demo's `shorter`),
# RANKINGS how many simulated rankings the round trains on (default 50). In a fresh folder
# (var/learning-check, its own SQLite database and model store): the demo project's 50 prompts
# are sampled (K=4, 64 new tokens), simulated labelers rank them by PREFERENCE with Plackett-Luce
# noise 0.5, one `run_round` trains the reward model and runs 40 PPO steps, and `evaluate_policy`
# gives the new policy's win rate over the base on the 24 held-out prompts, judged by PREFERENCE.
# Prints the steps' output, then one JSON line of figures. Takes about half an hour on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFERENCE=${1:-labeling.demo.preferences:shorter}
RANKINGS=${2:-50}
export VAR_DIR=var/learning-check DJANGO_ENV=development
rm -rf "$VAR_DIR" && mkdir -p "$VAR_DIR"
PY=.venv/bin/python
PROJECT="Demo: helpful answers"

$PY manage.py migrate --noinput -v 0
$PY manage.py seed_demo >/dev/null
$PY manage.py shell -c "
from labeling.models import Project
Project.objects.filter(name='$PROJECT').update(max_new_tokens=64, ppo_config={'steps': 40, 'max_new_tokens': 64})"
$PY manage.py sample_comparisons --project "$PROJECT" --prompts 50 --sync
echo
$PY manage.py simulate_labelers --project "$PROJECT" --preference "$PREFERENCE" --rankings "$RANKINGS" --noise 0.5
started=$(date +%s)
$PY manage.py run_round --project "$PROJECT" --sync
round_seconds=$(( $(date +%s) - started ))
$PY manage.py evaluate_policy --project "$PROJECT" --preference "$PREFERENCE" \
  --prompts labeling/demo/heldout_prompts.jsonl --limit 24
$PY manage.py shell -c "
import json
from training.models import RewardModelVersion, TrainingRun
rm = RewardModelVersion.objects.latest('id')
ppo = [m for m in TrainingRun.objects.filter(kind='ppo').latest('id').metrics if 'kl' in m]
evaluation = TrainingRun.objects.filter(kind='eval').latest('id').metrics[-1]
print(json.dumps({
    'preference': '$PREFERENCE', 'rankings': rm.rankings_count,
    'rm_heldout_accuracy': rm.heldout_accuracy, 'rm_train_accuracy': rm.accuracy,
    'ppo_steps': len(ppo), 'score_first': ppo[0]['score'], 'score_last': ppo[-1]['score'],
    'kl_last': ppo[-1]['kl'], 'eos_rate_first': ppo[0]['eos_rate'], 'eos_rate_last': ppo[-1]['eos_rate'],
    'length_first': ppo[0]['mean_length'], 'length_last': ppo[-1]['mean_length'],
    'heldout_prompts': evaluation['n'], 'win_rate_new_over_base': evaluation['win_rate_b_over_a'],
    'round_seconds': $round_seconds,
}))"
