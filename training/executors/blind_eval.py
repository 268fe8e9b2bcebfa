"""Blind human evaluation of two policy versions: do people prefer the new policy to the old?

A run on the `generation` queue samples one completion per held-out prompt from each version
and makes eval comparison tasks of the two (K = 2) in a random display order. They are mixed
into labelers' queues at the project's eval ratio and look like any other task; an EvalPair
row records which two versions each compares, and each completion its own version. The win
rate and its interval come from `training.reports.metrics`. Eval rankings never train the reward model.
"""

from django.db import transaction

from labeling.models import ComparisonTask
from labeling.services import do_create_comparison_tasks
from training.datasets import heldout_prompts_for
from training.executors.evaluation import sample_one_each
from training.executors.placement import placed
from training.models import EvalPair, TrainingRun
from training.runs import Reporter, check_still_running


def sample_blind_evaluation(run: TrainingRun, report: Reporter) -> None:
    """Samples one completion per held-out prompt from each version and stores the blind tasks.

    Each version samples with its own seed, so two versions that happen to write alike do not
    produce the same answer from the same random draws. A prompt whose two answers are still
    identical gets no task (there is nothing to choose); the run notes how many.
    """
    a, b = run.baseline, run.policy
    prompts = list(heldout_prompts_for(a, b)[: run.prompts])
    if not prompts:
        raise ValueError("No held-out prompts are left for this pair of versions.")
    seed = run.config["seed"]
    report(0.05, step=0, steps=2, phase=f"sampling {len(prompts)} answers each from v{a.version} and v{b.version}")
    texts = [p.chat for p in prompts]
    samples_a, samples_b = sample_one_each(run.project, [a, b], texts, [seed, seed + 1], placed(run))
    pairs = [(p, [sa, sb]) for p, sa, sb in zip(prompts, samples_a, samples_b, strict=True) if sa.text != sb.text]
    tasks = _store_blind_tasks(run, pairs)
    identical = len(prompts) - len(pairs)
    if identical:
        report.note(f"{identical} prompts got the same answer from both versions; no task was made for them.")
    report(1.0, step=2, steps=2, tasks=len(tasks), identical=identical)


def _store_blind_tasks(run: TrainingRun, pairs: list) -> list[ComparisonTask]:
    """The eval tasks and their EvalPair rows, in one transaction; nothing if the run was stopped."""
    a, b = run.baseline, run.policy
    with transaction.atomic():
        check_still_running(run)
        tasks = do_create_comparison_tasks(
            run.project, b.pk, pairs, ComparisonTask.Kind.EVAL, run.config, sample_versions=[a.pk, b.pk]
        )
        EvalPair.objects.bulk_create(EvalPair(task=task, run=run, version_a=a, version_b=b) for task in tasks)
    return tasks
