"""Does the reward model agree with labels it never saw? Each ranking newer than a reward-model
version's training data is scored by that version before the next version trains on it, and
the result is stored per ranking and version (RankingScore), so the running figure is a query.

Scoring happens on a worker: the beat task `training.score_fresh_rankings` every few minutes,
and at the start of every reward-model run for the rankings it is about to train on.
"""

from django.conf import settings

from labeling.models import Ranking
from labeling.statistics import order_from_scores, pairwise_agreement
from training.configs import reward_model_config
from training.core.reward_model import RewardModel, load_reward_model, score_groups
from training.datasets import as_ranked_prompts, fresh_rankings
from training.executors.placement import worker_placement
from training.models import RankingScore, RewardModelVersion
from training.services import latest_reward_model

RANKINGS_PER_BATCH = 32  # scored and stored together; a crash keeps the batches before it
MAX_PER_TASK = 2000  # one beat task's share; the next beat takes the rest


def score_fresh_rankings(
    reward_model: RewardModelVersion,
    model: RewardModel,
    tokenizer,
    through: int | None = None,
    limit: int | None = None,
) -> int:
    """Scores the version's fresh rankings (up to id `through`, at most `limit`) with its loaded
    model, in batches each stored on its own; returns how many were stored. A ranking scored
    meanwhile by a concurrent call keeps its row, so running this twice is harmless."""
    max_length = reward_model_config(reward_model.project.recipe).max_length
    pending = fresh_rankings(reward_model)
    if through is not None:
        pending = pending.filter(pk__lte=through)
    stored = 0
    while limit is None or stored < limit:
        size = RANKINGS_PER_BATCH if limit is None else min(RANKINGS_PER_BATCH, limit - stored)
        ids = list(pending.values_list("pk", flat=True)[:size])
        if not ids:
            break
        data = as_ranked_prompts(Ranking.objects.filter(pk__in=ids))  # ordered by id, as `ids`
        scores = score_groups(model, tokenizer, [(item.prompt, item.completions) for _, item in data], max_length)
        rows = []
        for ranking_id, (_, item), group in zip(ids, data, scores, strict=True):
            counts = pairwise_agreement(item.order, order_from_scores(group))
            rows.append(
                RankingScore(
                    ranking_id=ranking_id,
                    reward_model=reward_model,
                    scores=group,
                    pairs=counts.compared,
                    agreed=counts.agreed,
                )
            )
        RankingScore.objects.bulk_create(rows, ignore_conflicts=True)
        stored += len(rows)
    return stored


def execute_fresh_scoring(project_id: int, limit: int = MAX_PER_TASK) -> int:
    """Scores a project's fresh rankings with its latest reward model; 0 if the project is gone,
    has no reward model, or nothing is left to score (the model is then not loaded)."""
    latest = latest_reward_model(project_id)
    if latest is None or not fresh_rankings(latest).exists():
        return 0
    model, tokenizer = load_reward_model(settings.MODEL_STORE / latest.checkpoint, worker_placement())
    return score_fresh_rankings(latest, model, tokenizer, limit=limit)
