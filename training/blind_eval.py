"""Blind human evaluation of two policy versions: do people prefer the new policy to the old?

A run on the `generation` queue samples one completion per held-out prompt from each version
and makes eval comparison tasks of the two (K = 2) in a random display order. They are mixed
into labelers' queues at the project's eval ratio and look like any other task; an EvalPair
row records which two versions each compares, and each completion its own version. The win
rate and its interval come from `training.metrics`. Eval rankings never train the reward model.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from labeling.models import ComparisonTask, Project, Prompt
from labeling.services import do_create_comparison_tasks
from training import runs
from training.evaluation import default_pair, sample_one_each
from training.models import EvalPair, PolicyVersion, TrainingRun
from training.runs import carried_out, check_still_running, record_progress, start_run

MAX_PROMPTS = 500


class BlindEvaluationRefused(Exception):
    """The evaluation cannot start as asked; the message says why and what to do."""


def heldout_prompts_for(a: PolicyVersion, b: PolicyVersion) -> QuerySet[Prompt]:
    """The project's held-out prompts on which these two versions have not been compared yet."""
    same_pair = Q(version_a=a, version_b=b) | Q(version_a=b, version_b=a)
    compared = EvalPair.objects.filter(same_pair, task__prompt=OuterRef("pk"))
    return Prompt.objects.filter(project_id=a.project_id, heldout=True).exclude(Exists(compared)).order_by("id")


def check_blind_evaluation(
    project: Project, prompts: int, a: PolicyVersion | None, b: PolicyVersion | None
) -> tuple[PolicyVersion, PolicyVersion]:
    """The two versions to compare (default: the active policy against its parent, or the base)."""
    if not 1 <= prompts <= MAX_PROMPTS:
        raise BlindEvaluationRefused(f"Ask for 1 to {MAX_PROMPTS} prompts, not {prompts}.")
    if a is None or b is None:
        default_a, default_b = default_pair(project)
        a, b = a or default_a, b or default_b
    if {a.project_id, b.project_id} != {project.pk}:
        raise BlindEvaluationRefused(f"Both versions must belong to project {project.name!r}.")
    if a.pk == b.pk:
        raise BlindEvaluationRefused(f"Both sides are policy v{a.version}: choose two different versions.")
    if not heldout_prompts_for(a, b).exists():
        raise BlindEvaluationRefused(
            f"Project {project.name!r} has no held-out prompts left on which v{b.version} and v{a.version} have "
            "not been compared: hold prompts out in the admin (Prompts, action 'Hold out for evaluation') or "
            "with `manage.py blind_evaluation --hold-out FILE`."
        )
    return a, b


def do_launch_blind_evaluation(
    project: Project,
    prompts: int,
    a: PolicyVersion | None = None,
    b: PolicyVersion | None = None,
    launched_by=None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queues a run (queue `generation`) that samples both versions on up to `prompts` held-out
    prompts and makes the blind comparison tasks; raises BlindEvaluationRefused with the reason."""
    from training.tasks import run_blind_evaluation  # the task module imports this one

    a, b = check_blind_evaluation(project, prompts, a, b)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            kind=TrainingRun.Kind.BLIND_EVAL,
            launched_by=launched_by,
            config={"a": a.pk, "b": b.pk, "version_a": a.version, "version_b": b.version, "prompts": prompts},
        )
        run.config["seed"] = run.pk
        run.save(update_fields=["config"])
        if enqueue:
            runs.enqueue(run, run_blind_evaluation)
    return run


def execute_blind_evaluation_run(run_id: int, on_progress=None) -> TrainingRun | None:
    """Samples one completion per held-out prompt from each version and stores the blind tasks.

    Each version samples with its own seed, so two versions that happen to write alike do not
    produce the same answer from the same random draws. A prompt whose two answers are still
    identical gets no task (there is nothing to choose); the run notes how many.
    """
    run = start_run(run_id)
    if run is None:
        return None
    with carried_out(run):
        a = PolicyVersion.objects.get(pk=run.config["a"])
        b = PolicyVersion.objects.get(pk=run.config["b"])
        prompts = list(heldout_prompts_for(a, b)[: run.config["prompts"]])
        if not prompts:
            raise BlindEvaluationRefused("No held-out prompts are left for this pair of versions.")
        seed = run.config["seed"]
        record_progress(run, 0.05, step=0, steps=2, on_progress=on_progress)
        samples_a, samples_b = sample_one_each(run.project, [a, b], [p.text for p in prompts], seeds=[seed, seed + 1])
        pairs = [(p, [sa, sb]) for p, sa, sb in zip(prompts, samples_a, samples_b, strict=True) if sa.text != sb.text]
        tasks = _store_blind_tasks(run, a, b, pairs)
        identical = len(prompts) - len(pairs)
        if identical:
            note = f"{identical} prompts got the same answer from both versions; no task was made for them."
            TrainingRun.objects.filter(pk=run.pk).update(log_tail=note)
        record_progress(run, 1.0, step=2, steps=2, tasks=len(tasks), identical=identical, on_progress=on_progress)
    return run


def _store_blind_tasks(run: TrainingRun, a: PolicyVersion, b: PolicyVersion, pairs: list) -> list[ComparisonTask]:
    """The eval tasks and their EvalPair rows, in one transaction; nothing if the run was stopped."""
    sampling = {**run.project.sampling_settings(), "seed": run.config["seed"]}
    with transaction.atomic():
        check_still_running(run)
        tasks = do_create_comparison_tasks(
            run.project, b.pk, pairs, ComparisonTask.Kind.EVAL, sampling, sample_versions=[a.pk, b.pk]
        )
        EvalPair.objects.bulk_create(EvalPair(task=task, run=run, version_a=a, version_b=b) for task in tasks)
    return tasks
