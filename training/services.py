"""Workflows over model versions and training runs.

Runs are launched by `do_launch_*` (a row, then a Celery task once the row is committed) and
carried out by `execute_*` (in the worker, or in-process for `--sync` commands).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from labeling.models import ComparisonTask, Completion, Demonstration, Project, Prompt, Ranking, TaskCompletion
from labeling.services import do_create_comparison_tasks
from training import runs
from training.core.checkpoints import write_once
from training.core.rankings import RankedPrompt
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.runs import (
    carried_out,
    check_still_running,
    checkpoint_name,
    record_progress,
    start_run,
)

log = logging.getLogger(__name__)
PROMPTS_PER_STEP = 8  # tasks appear (and progress moves) after each step of this many prompts

ProgressLine = Callable[[TrainingRun], None]


class NoActivePolicy(Exception):
    """The project has no active policy to sample from."""


class NothingToTrainOn(Exception):
    """The project has no (usable) rankings for this run."""


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
    """The project's prompts that have no comparison task from this policy yet, oldest first; held-out
    prompts are kept for blind evaluations."""
    sampled = ComparisonTask.objects.filter(prompt=OuterRef("pk"), policy_version=policy)
    return project.prompts.filter(heldout=False).exclude(Exists(sampled)).order_by("id")


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
            runs.enqueue(run, run_sampling)
    return run


def execute_sampling_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Samples and stores comparison tasks for a queued `generate` run, step by step.

    Tasks of finished steps stay if a later step fails. Returns the run, or None if it was not
    queued (already taken, or gone).
    """
    from training.core.generation import SamplingConfig, sample_distinct
    from training.core.loading import load_model

    run = start_run(run_id)
    if run is None:
        return None
    config = run.config
    with carried_out(run):
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
            record_progress(
                run,
                done / len(prompts),
                step=done,
                tasks=created,
                flagged=flagged,
                tokens_per_s=tokens / elapsed,
                on_progress=on_progress,
            )
        if flagged:
            note = f"{flagged} prompts gave fewer than {config['k']} distinct completions; no task was made."
            TrainingRun.objects.filter(pk=run.pk).update(log_tail=note)
    return run


# --- reward model ------------------------------------------------------------------------------


def _heldout(prompt_id: int, fraction: float) -> bool:
    """A fixed split by prompt (never by pair): the same prompt is always on the same side."""
    return (prompt_id * 2654435761) % 1000 < fraction * 1000


def training_rankings(project: Project) -> QuerySet[Ranking]:
    """The rankings a reward model trains on: those of training comparisons that staff have not
    excluded. Eval rankings (blind evaluations included) and gold rankings never train it: gold
    tasks are ranked by every labeler, and their many copies would over-weight them."""
    return Ranking.objects.filter(task__project=project, task__kind=ComparisonTask.Kind.TRAIN, excluded=False).exclude(
        task__state=ComparisonTask.State.GOLD
    )


def ranked_prompts(project: Project, through_ranking_id: int) -> list[tuple[int, RankedPrompt]]:
    """The project's training rankings up to an id, as (prompt id, RankedPrompt) with texts, in 2 queries."""
    return as_ranked_prompts(training_rankings(project).filter(pk__lte=through_ranking_id))


def as_ranked_prompts(rankings: QuerySet[Ranking]) -> list[tuple[int, RankedPrompt]]:
    """Rankings as (prompt id, RankedPrompt): texts in display order, the order as indices into them."""
    rankings = list(rankings.select_related("task__prompt", "labeler").order_by("id"))
    items = TaskCompletion.objects.filter(task__in={r.task_id for r in rankings}).select_related("completion")
    by_task: dict[int, list[TaskCompletion]] = {}
    for item in items.order_by("task", "position"):
        by_task.setdefault(item.task_id, []).append(item)
    out = []
    for ranking in rankings:
        shown = by_task[ranking.task_id]
        index = {item.completion_id: i for i, item in enumerate(shown)}
        out.append(
            (
                ranking.task.prompt_id,
                RankedPrompt(
                    prompt=ranking.task.prompt.text,
                    completions=[item.completion.text for item in shown],
                    order=[[index[cid] for cid in group] for group in ranking.order],
                    labeler=ranking.labeler.get_username(),
                ),
            )
        )
    return out


def reference_completions(project: Project, limit: int = 256) -> list[tuple[str, str]]:
    """What the RM's scores are centred on: demonstrations if any, else the base policy's samples."""
    demos = Demonstration.objects.filter(prompt__project=project).select_related("prompt").order_by("id")[:limit]
    if demos:
        return [(d.prompt.text, d.text) for d in demos]
    base = Completion.objects.filter(policy_version__project=project, policy_version__version=0)
    return [(c.prompt.text, c.text) for c in base.select_related("prompt").order_by("id")[:limit]]


def do_launch_reward_model(project: Project, launched_by=None, enqueue: bool = True) -> TrainingRun:
    """Queues a reward-model run on every usable ranking so far (queue `training`)."""
    from training.tasks import run_in_child

    through = training_rankings(project).order_by("-id").first()
    if through is None:
        raise NothingToTrainOn(f"Project {project.name!r} has no rankings to train a reward model on.")
    config = project.reward_config()
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            kind=TrainingRun.Kind.RM,
            launched_by=launched_by,
            config={**asdict(config), "through_ranking_id": through.pk, "policy_version": active_policy(project).pk},
        )
        if enqueue:
            runs.enqueue(run, run_in_child)
    return run


def execute_reward_model_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Trains, evaluates on held-out prompts, normalises and stores a new RewardModelVersion.

    Warm-starts from the project's latest RM version when there is one, else from the active
    policy's trunk. The row is created only after the checkpoint folder is complete.
    """
    from training.core.config import RewardModelConfig
    from training.core.reward_model import (
        evaluate,
        load_reward_model,
        new_reward_model,
        normalise,
        save_reward_model,
        train_reward_model,
    )

    run = start_run(run_id)
    if run is None:
        return None
    with carried_out(run):
        project = run.project
        settings_ = {k: v for k, v in run.config.items() if k in RewardModelConfig.__dataclass_fields__}
        config = RewardModelConfig(**settings_)
        data = ranked_prompts(project, run.config["through_ranking_id"])
        train = [item for prompt_id, item in data if not _heldout(prompt_id, config.heldout_fraction)]
        heldout = [item for prompt_id, item in data if _heldout(prompt_id, config.heldout_fraction)]
        if not train:
            raise NothingToTrainOn("Every ranking fell in the held-out split; collect more rankings.")
        parent = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
        if parent is not None:
            model, tokenizer = load_reward_model(settings.MODEL_STORE / parent.checkpoint, config.dtype)
            # No ranking enters training unscored: the parent scores the fresh ones first.
            from training.fresh_scores import score_fresh_rankings

            score_fresh_rankings(parent, model, tokenizer, through=run.config["through_ranking_id"])
        else:
            policy = PolicyVersion.objects.get(pk=run.config["policy_version"])
            model, tokenizer = new_reward_model(policy.checkpoint, settings.MODEL_STORE, config)

        def log_step(figures: dict) -> None:
            record_progress(run, 0.9 * figures["step"] / figures["steps"], **figures, on_progress=on_progress)

        train_reward_model(model, tokenizer, train, config, log=log_step)
        on_train = evaluate(model, tokenizer, train, config)
        on_heldout = evaluate(model, tokenizer, heldout, config) if heldout else {}
        offset = normalise(model, tokenizer, reference_completions(project), config.max_length)
        checkpoint = Path("reward_models") / f"project-{project.pk}" / checkpoint_name(run)
        write_once(settings.MODEL_STORE / checkpoint, lambda folder: save_reward_model(model, tokenizer, folder))
        version = _register_reward_model(run, parent, checkpoint, data, on_train, on_heldout, offset)
        record_progress(
            run,
            1.0,
            reward_model_version=version.version,
            heldout_accuracy=on_heldout.get("accuracy"),
            on_progress=on_progress,
        )
    return run


def _register_reward_model(run, parent, checkpoint, data, on_train, on_heldout, offset) -> RewardModelVersion:
    with transaction.atomic():
        check_still_running(run)
        Project.objects.select_for_update().get(pk=run.project_id)
        latest = RewardModelVersion.objects.filter(project_id=run.project_id).order_by("-version").first()
        through = Ranking.objects.get(pk=run.config["through_ranking_id"])
        return RewardModelVersion.objects.create(
            project_id=run.project_id,
            version=(latest.version + 1) if latest else 1,
            parent=parent,
            checkpoint=str(checkpoint),
            created_by_run=run,
            accuracy=on_train.get("accuracy"),
            heldout_accuracy=on_heldout.get("accuracy"),
            tie_rate=on_train.get("tie_rate"),
            metrics={"train": on_train, "heldout": on_heldout, "rankings": len(data)},
            trained_through_ranking_id=through.pk,
            trained_through_time=through.created_at,
            rankings_count=len(data),
            normalisation={"offset": offset},
        )


# --- PPO ---------------------------------------------------------------------------------------


def do_launch_ppo(project: Project, steps: int | None = None, launched_by=None, enqueue: bool = True) -> TrainingRun:
    """Queues a PPO round of the active policy against the latest reward model (queue `training`)."""
    from training.tasks import run_in_child

    reward_model = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
    if reward_model is None:
        raise NothingToTrainOn(f"Project {project.name!r} has no reward model yet: train one first.")
    config = project.ppo_settings(**({"steps": steps} if steps else {}))
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            kind=TrainingRun.Kind.PPO,
            launched_by=launched_by,
            config={**asdict(config), "policy_version": active_policy(project).pk, "reward_model": reward_model.pk},
        )
        if enqueue:
            runs.enqueue(run, run_in_child)
    return run


def execute_ppo_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Trains the policy with PPO against the RM, stores it as a candidate version, and promotes it
    when the project's rule is automatic. The version row is created after its files are complete."""
    from training.core.config import PPOConfig
    from training.core.loading import load_model
    from training.core.ppo import PPOTrainer, reward_model_scorer
    from training.core.reward_model import load_reward_model

    run = start_run(run_id)
    if run is None:
        return None
    with carried_out(run):
        project = run.project
        config = PPOConfig(**{k: v for k, v in run.config.items() if k in PPOConfig.__dataclass_fields__})
        parent = PolicyVersion.objects.get(pk=run.config["policy_version"])
        reward_model = RewardModelVersion.objects.get(pk=run.config["reward_model"])
        policy, tokenizer = load_model(parent.checkpoint, settings.MODEL_STORE)
        rm, _ = load_reward_model(settings.MODEL_STORE / reward_model.checkpoint)
        critic, _ = load_reward_model(settings.MODEL_STORE / reward_model.checkpoint)  # initialised from the RM
        scorer = reward_model_scorer(rm.requires_grad_(False), tokenizer, max_length=512)
        trainer = PPOTrainer(policy, tokenizer, critic, scorer, config)

        def log_step(figures: dict) -> None:
            record_progress(run, 0.95 * figures["step"] / figures["steps"], **figures, on_progress=on_progress)

        trainer.train(list(project.prompts.filter(heldout=False).values_list("text", flat=True)), log=log_step)
        trained = trainer.trained_policy()
        checkpoint = Path("policies") / f"project-{project.pk}" / checkpoint_name(run)

        def write(folder: Path) -> None:
            trained.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        write_once(settings.MODEL_STORE / checkpoint, write)
        version = _register_policy(run, parent, reward_model, checkpoint)
        if project.promotion == Project.Promotion.AUTOMATIC:
            do_promote_policy(version)
        record_progress(run, 1.0, policy_version=version.version, on_progress=on_progress)
    return run


def _register_policy(run, parent, reward_model, checkpoint) -> PolicyVersion:
    with transaction.atomic():
        check_still_running(run)
        Project.objects.select_for_update().get(pk=run.project_id)
        latest = PolicyVersion.objects.filter(project_id=run.project_id).order_by("-version").first()
        return PolicyVersion.objects.create(
            project_id=run.project_id,
            version=latest.version + 1,
            parent=parent,
            checkpoint=str(checkpoint),
            created_by_run=run,
            reward_model=reward_model,
            status=PolicyVersion.Status.CANDIDATE,
        )


def do_promote_policy(policy: PolicyVersion) -> PolicyVersion:
    """Makes `policy` its project's active policy: the previous one is retired, and its open
    comparison tasks stop being handed out (their rankings stay and keep training the RM).
    Blind-evaluation tasks stay open: they compare versions, whichever is active."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=policy.project_id)
        previous = PolicyVersion.objects.filter(project_id=policy.project_id, status=PolicyVersion.Status.ACTIVE)
        previous = previous.exclude(pk=policy.pk)
        ComparisonTask.objects.filter(
            policy_version__in=previous, state=ComparisonTask.State.OPEN, eval_pair__isnull=True
        ).update(state=ComparisonTask.State.RETIRED)
        previous.update(status=PolicyVersion.Status.RETIRED)
        policy.status = PolicyVersion.Status.ACTIVE
        policy.promoted_at = timezone.now()
        policy.save(update_fields=["status", "promoted_at"])
    return policy
