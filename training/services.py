"""Workflows over model versions and training runs.

Runs are launched by `do_launch_*` (a row, then a Celery task once the row is committed) and
carried out by `execute_*` (in the worker, or in-process for `--sync` commands).
"""

import logging
import time
import traceback
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from labeling.models import ComparisonTask, Project, Prompt
from labeling.services import do_create_comparison_tasks
from training.models import PolicyVersion, TrainingRun

log = logging.getLogger(__name__)
PROMPTS_PER_STEP = 8  # tasks appear (and progress moves) after each step of this many prompts

ProgressLine = Callable[[TrainingRun], None]


class NoActivePolicy(Exception):
    """The project has no active policy to sample from."""


def do_register_base_policy(project: Project) -> PolicyVersion:
    """Makes the project's base model its version-0 policy, active; returns the existing one if any."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        existing = PolicyVersion.objects.filter(project=project, version=0).first()
        if existing is not None:
            return existing
        return PolicyVersion.objects.create(
            project=project,
            version=0,
            checkpoint=project.base_model,
            status=PolicyVersion.Status.ACTIVE,
            promoted_at=timezone.now(),
        )


def active_policy(project: Project) -> PolicyVersion:
    policy = PolicyVersion.objects.filter(project=project, status=PolicyVersion.Status.ACTIVE).first()
    if policy is None:
        raise NoActivePolicy(f"Project {project.name!r} has no active policy to sample from.")
    return policy


def prompts_to_sample(project: Project, policy: PolicyVersion) -> QuerySet[Prompt]:
    """The project's prompts that have no comparison task from this policy yet, oldest first."""
    sampled = ComparisonTask.objects.filter(prompt=OuterRef("pk"), policy_version=policy)
    return project.prompts.exclude(Exists(sampled)).order_by("id")


def do_launch_sampling(
    project: Project, prompts: int, kind: str = "train", launched_by=None, enqueue: bool = True
) -> TrainingRun:
    """Queues a run that samples K completions for up to `prompts` prompts of the active policy.

    With enqueue=False no Celery task is sent: the caller runs it (`execute_sampling_run`).
    """
    from training.tasks import run_sampling  # the task module imports this one

    policy = active_policy(project)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            kind=TrainingRun.Kind.GENERATE,
            launched_by=launched_by,
            config={
                "policy_version": policy.pk,
                "prompts": prompts,
                "kind": kind,
                "k": project.k,
                **project.sampling_settings(),
            },
        )
        run.config["seed"] = run.pk
        run.save(update_fields=["config"])
        if enqueue:
            transaction.on_commit(lambda: run_sampling.delay(run.pk))
    return run


def _record_progress(run: TrainingRun, progress: float, **metrics) -> None:
    run.progress = min(1.0, progress)
    run.heartbeat_at = timezone.now()
    run.metrics = [*run.metrics, {"time": run.heartbeat_at.isoformat(), **metrics}]
    run.save(update_fields=["progress", "heartbeat_at", "metrics"])


def _start(run_id: int) -> TrainingRun | None:
    """Marks a queued run as running; None if it is gone or was already taken."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != TrainingRun.Status.QUEUED:
            return None
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "started_at", "heartbeat_at"])
    return run


def _finish(run: TrainingRun, status: str, error: str = "") -> None:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    if status == TrainingRun.Status.SUCCEEDED:
        run.progress = 1.0
    run.save(update_fields=["status", "error", "finished_at", "progress"])


def execute_sampling_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Samples and stores comparison tasks for a queued `generate` run, step by step.

    Tasks of finished steps stay if a later step fails. Returns the run, or None if it was not
    queued (already taken, or gone).
    """
    from training.core.generation import SamplingConfig, sample_distinct
    from training.core.loading import load_model

    run = _start(run_id)
    if run is None:
        return None
    config = run.config
    try:
        project = run.project
        policy = PolicyVersion.objects.get(pk=config["policy_version"])
        prompts = list(prompts_to_sample(project, policy)[: config["prompts"]])
        sampling = SamplingConfig(
            temperature=config["temperature"],
            top_p=config["top_p"],
            top_k=config["top_k"],
            max_new_tokens=config["max_new_tokens"],
            seed=config["seed"],
        )
        model, tokenizer = load_model(policy.checkpoint, settings.MODEL_STORE)
        created = flagged = tokens = 0
        started = time.monotonic()
        for step in range(0, len(prompts), PROMPTS_PER_STEP):
            batch = prompts[step : step + PROMPTS_PER_STEP]
            step_config = SamplingConfig(**{**sampling.__dict__, "seed": sampling.seed + step})
            samples = sample_distinct(model, tokenizer, [p.text for p in batch], config["k"], step_config)
            usable = [(p, s) for p, s in zip(batch, samples, strict=True) if s is not None]
            do_create_comparison_tasks(project, policy.pk, usable, config["kind"], {**config, "seed": step_config.seed})
            created += len(usable)
            flagged += len(batch) - len(usable)
            tokens += sum(s.token_count for _, group in usable for s in group)
            done = step + len(batch)
            elapsed = time.monotonic() - started
            _record_progress(
                run, done / len(prompts), step=done, tasks=created, flagged=flagged, tokens_per_s=tokens / elapsed
            )
            if on_progress:
                on_progress(run)
        if flagged:
            run.log_tail = f"{flagged} prompts gave fewer than {config['k']} distinct completions; no task was made."
            run.save(update_fields=["log_tail"])
        _finish(run, TrainingRun.Status.SUCCEEDED)
    except Exception as exc:
        log.exception("sampling run %s failed", run_id)
        run.log_tail = traceback.format_exc()[-4000:]
        run.save(update_fields=["log_tail"])
        _finish(run, TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    return run
