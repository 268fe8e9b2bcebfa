"""Full rounds: reward model → PPO → promotion → new comparisons, one round per project at a time."""

import logging

from django.db import IntegrityError, transaction

from labeling.models import Project
from training import runs
from training.models import RewardModelVersion, TrainingRun
from training.runs import carried_out, record_progress, start_run
from training.services import (
    NothingToTrainOn,
    ProgressLine,
    do_launch_ppo,
    do_launch_reward_model,
    do_launch_sampling,
    execute_ppo_run,
    execute_reward_model_run,
    execute_sampling_run,
    training_rankings,
)

log = logging.getLogger(__name__)


class RoundInProgress(Exception):
    """A round of the project is already queued or running (enforced by a unique index)."""


ROUND_SAMPLE_PROMPTS = 50  # comparisons sampled from the new policy at the end of a round


def do_launch_round(project: Project, launched_by=None, enqueue: bool = True) -> TrainingRun:
    """Queues a full round: RM → PPO → promotion (per the project's rule) → new comparisons.

    Never two live rounds of one project: the database refuses the second.
    """
    from training.tasks import run_round

    if not training_rankings(project).exists():
        raise NothingToTrainOn(f"Project {project.name!r} has no rankings to train a reward model on.")
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(project=project, kind=TrainingRun.Kind.ROUND, launched_by=launched_by)
            if enqueue:
                runs.enqueue(run, run_round)
    except IntegrityError:
        live = TrainingRun.objects.filter(project=project, kind=TrainingRun.Kind.ROUND).exclude(
            status__in=TrainingRun.FINISHED
        )
        raise RoundInProgress(
            f"A round of {project.name!r} is already {live.first().status if live.exists() else 'running'} "
            f"(run {live.first().pk if live.exists() else '?'}); wait for it or cancel it."
        ) from None
    return run


def execute_round(run_id: int, in_child: bool = True, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Carries out a queued round, each step its own run (in a child process on a worker)."""
    round_ = start_run(run_id)
    if round_ is None:
        return None
    project = round_.project
    steps = [
        ("rm", 0.0, 0.35, lambda: do_launch_reward_model(project, enqueue=False)),
        ("ppo", 0.35, 0.85, lambda: do_launch_ppo(project, enqueue=False)),
        ("generate", 0.85, 1.0, lambda: do_launch_sampling(project, ROUND_SAMPLE_PROMPTS, enqueue=False)),
    ]
    with carried_out(round_):
        for name, start, end, launch in steps:
            if name == "generate" and project.promotion == Project.Promotion.MANUAL:
                record_progress(round_, 1.0, note="The new policy awaits promotion; no comparisons sampled.")
                break
            step = launch()
            step.config["round"] = round_.pk
            step.save(update_fields=["config"])
            record_progress(round_, start, step=name, step_run=step.pk, on_progress=on_progress)
            if in_child:
                runs.supervise_in_child(step.pk, parent_id=round_.pk)
            else:
                EXECUTORS[step.kind](step.pk, on_progress=on_progress)  # the line follows the step
            step.refresh_from_db()
            if step.status != TrainingRun.Status.SUCCEEDED:
                raise RoundStepFailed(
                    f"The {step.get_kind_display().lower()} step (run {step.pk}) {step.status}: {step.error}"
                )
            record_progress(round_, end, step=name, step_run=step.pk, done=True, on_progress=on_progress)
    return round_


class RoundStepFailed(Exception):
    """A step of a round did not succeed; the round stops there."""


def new_rankings_since_last_reward_model(project: Project) -> int:
    latest = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
    rankings = training_rankings(project)
    return rankings.filter(pk__gt=latest.trained_through_ranking_id).count() if latest else rankings.count()


def start_due_rounds() -> list[TrainingRun]:
    """The periodic check: a round for every project with enough new rankings and no live round."""
    started = []
    for project in Project.objects.all():
        if new_rankings_since_last_reward_model(project) < project.retrain_threshold:
            continue
        try:
            started.append(do_launch_round(project))
        except RoundInProgress:
            continue
    return started


EXECUTORS = {
    TrainingRun.Kind.ROUND: execute_round,
    TrainingRun.Kind.GENERATE: execute_sampling_run,
    TrainingRun.Kind.RM: execute_reward_model_run,
    TrainingRun.Kind.PPO: execute_ppo_run,
}
