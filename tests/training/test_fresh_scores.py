"""The reward model against fresh labels: every ranking newer than an RM version's training data
is scored by it (on a worker: the beat task, and at the start of the next RM run), stored per
ranking and version, so "RM agrees with humans" is a query."""

from unittest import mock

import pytest
import torch
from django.conf import settings as django_settings

from labeling.models import ComparisonTask, Ranking
from labeling.services import do_assign_next_task, do_submit_ranking
from labeling.statistics import order_from_scores, pairwise_agreement, wilson_interval
from tests.factories import UserFactory
from tests.training.test_reward_model_runs import FAST
from training import tasks
from training.core.reward_model import load_reward_model, reward_model_scorer
from training.datasets import fresh_rankings
from training.executors import carry_out
from training.executors.fresh_scores import execute_fresh_scoring
from training.models import RankingScore, RewardModelVersion, TrainingRun
from training.reports.metrics import project_metrics
from training.services import create_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(ranked_project):
    ranked_project.recipe.reward_model_config = FAST
    ranked_project.recipe.save(update_fields=["reward_model_config"])
    return ranked_project


def train_rm(project) -> RewardModelVersion:
    run = carry_out(create_run(project, "rm").pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    return RewardModelVersion.objects.get(created_by_run=run)


def rank_new_prompts(project, n: int, labelers: list) -> list[Ranking]:
    """n new prompts sampled and ranked by each labeler (shortest first: not what the RM learned)."""
    for i in range(n):
        project.prompts.create(text=f"New question {i}: spell {i * 7}?")
    project.overlap = len(labelers)
    project.save(update_fields=["overlap"])
    carry_out(create_run(project, "generate", prompts=n).pk)
    made = []
    for labeler in labelers:
        project.labelers.add(labeler)
        while (assignment := do_assign_next_task(project, labeler)) is not None:
            shown = sorted(assignment.task.display_completions(), key=lambda c: len(c.text))
            made.append(do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in shown])[0])
    return made


def test_fresh_rankings_are_scored_and_stored_per_ranking_and_version(project, labeler):
    rm = train_rm(project)
    assert not fresh_rankings(rm).exists()  # everything so far is its training data
    fresh = rank_new_prompts(project, 3, [labeler, UserFactory(username="second")])
    assert [r.pk for r in fresh_rankings(rm)] == sorted(r.pk for r in fresh)

    assert execute_fresh_scoring(project.pk) == 6
    assert execute_fresh_scoring(project.pk) == 0  # safe to run twice: nothing left, nothing duplicated
    stored = RankingScore.objects.filter(reward_model=rm).order_by("ranking_id")
    assert [s.ranking_id for s in stored] == sorted(r.pk for r in fresh)

    # The stored scores are the RM's own normalised scores, and agreed/pairs follow from them.
    model, tokenizer = load_reward_model(django_settings.MODEL_STORE / rm.checkpoint)
    score = reward_model_scorer(model, tokenizer, max_length=FAST["max_length"])
    for row in stored:
        ranking = row.ranking
        shown = ranking.task.display_completions()
        expected = score([ranking.task.prompt.text] * len(shown), [c.text for c in shown])
        assert torch.allclose(torch.tensor(row.scores), expected, atol=1e-4)
        index = {c.pk: i for i, c in enumerate(shown)}
        human = [[index[cid] for cid in group] for group in ranking.order]
        counts = pairwise_agreement(human, order_from_scores(row.scores))
        assert (row.agreed, row.pairs) == (counts.agreed, counts.compared) and row.pairs == 3

    figures = project_metrics(project)
    [version] = figures["reward_models"]
    total_agreed = sum(s.agreed for s in stored)
    # 18 pairs: under the minimum of 20, so the share is withheld and its interval given
    fresh = version["fresh_accuracy"]
    assert (fresh["share"], fresh["pairs"]) == (None, 18)
    assert (fresh["low"], fresh["high"]) == pytest.approx(wilson_interval(total_agreed / 18, 18))
    assert (version["fresh_rankings"], version["unscored_fresh_rankings"]) == (6, 0)
    by_labeler = {row["labeler"]: row for row in figures["labelers"]}
    assert by_labeler["second"]["rm_agreement"]["pairs"] == 9

    # Both labelers sorted by length, so they agree on all 9 pairs they both ranked: the human
    # ceiling, but on 9 pairs too few to tell (Wilson for 9 of 9: [0.7008, 1]).
    pairwise = figures["agreement"]["pairwise"]
    assert (pairwise["share"], pairwise["pairs"], pairwise["high"]) == (None, 9, 1.0)
    assert pairwise["low"] == pytest.approx(0.700847, abs=1e-6)


def test_an_rm_run_scores_with_the_previous_version_what_it_is_about_to_train_on(project, labeler):
    first = train_rm(project)
    fresh = rank_new_prompts(project, 2, [labeler])
    second = train_rm(project)
    assert second.trained_through_ranking_id == max(r.pk for r in fresh)
    scored = RankingScore.objects.filter(ranking__in=fresh)
    assert {(s.ranking_id, s.reward_model_id) for s in scored} == {(r.pk, first.pk) for r in fresh}
    assert not fresh_rankings(first).filter(pk__lte=second.trained_through_ranking_id).exists()
    assert not RankingScore.objects.filter(reward_model=second).exists()  # nothing is newer than its data


def test_the_beat_task_is_scheduled_and_queues_one_scoring_task_per_project(project, labeler):
    schedule = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "training.score_fresh_rankings" in schedule
    assert django_settings.CELERY_TASK_ROUTES["training.score_fresh_rankings_of"] == {"queue": "generation"}
    with mock.patch.object(tasks.score_fresh_rankings_of, "delay") as delay:
        assert tasks.score_fresh_rankings() == 0  # no reward model yet
        train_rm(project)
        assert tasks.score_fresh_rankings() == 1
    delay.assert_called_once_with(project.pk)
    rank_new_prompts(project, 1, [labeler])
    assert tasks.score_fresh_rankings_of(project.pk) == 1
    assert tasks.score_fresh_rankings_of(project.pk) == 0
    assert tasks.score_fresh_rankings_of(10_000_000) == 0  # a project that is gone


def test_rankings_of_tasks_the_ensemble_chose_are_not_fresh_labels(project, labeler):
    """Picked for being hard to order, they would understate the reward model (and fail the gate);
    the control share and tasks as sampled are its fresh labels."""
    rm = train_rm(project)
    made = rank_new_prompts(project, 3, [labeler])
    chosen_by = ["ensemble", "control", "sampling"]
    for ranking, how in zip(made, chosen_by, strict=True):
        ComparisonTask.objects.filter(pk=ranking.task_id).update(chosen_by=how)
    assert [r.task.chosen_by for r in fresh_rankings(rm)] == ["control", "sampling"]
    assert execute_fresh_scoring(project.pk) == 2
    assert set(RankingScore.objects.values_list("ranking__task__chosen_by", flat=True)) == {"control", "sampling"}
