"""Sampling K completions per prompt from a policy into comparison tasks."""

import time

from django.conf import settings

from labeling.models import ComparisonTask
from labeling.services import do_create_comparison_tasks
from training.core.config import SamplingConfig
from training.core.generation import context_budget, fit_to_context, sample_distinct
from training.core.loading import load_model
from training.core.selection import control_slots
from training.datasets import prompts_to_sample
from training.executors.placement import placed
from training.executors.selection import Selector
from training.models import TrainingRun
from training.runs import Reporter

PROMPTS_PER_STEP = 8  # tasks appear (and progress moves) after each step of this many prompts
CANDIDATES_PER_SLOT = 2  # uncertainty selection samples 2K candidates and keeps the K most disputed


def sample_comparisons(run: TrainingRun, report: Reporter) -> None:
    """Samples and stores comparison tasks for a `generate` run, step by step. With uncertainty
    selection, a training task is the K most disputed of 2K distinct candidates, except the
    project's control share, whose K are the first as sampled. Tasks of finished steps stay if a
    later step fails."""
    prompts = list(prompts_to_sample(run.project, run.policy)[: run.prompts])
    sampling = SamplingConfig(**run.config)
    report.phase(0.0, f"loading policy v{run.policy.version}")
    placement = placed(run)
    model, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE, placement, trainable=False)
    is_training = run.task_kind == ComparisonTask.Kind.TRAIN
    selector = Selector.for_project(run.project, placement) if is_training else None
    candidates = CANDIDATES_PER_SLOT * run.k if selector else run.k
    created = flagged = too_long = tokens = 0
    budget = context_budget(model, sampling)
    started = time.monotonic()
    for step in range(0, len(prompts), PROMPTS_PER_STEP):
        step_config = SamplingConfig(**{**run.config, "seed": sampling.seed + step})
        fitted = {p: fit_to_context(tokenizer, p.chat, budget) for p in prompts[step : step + PROMPTS_PER_STEP]}
        batch = [p for p, fit in fitted.items() if fit is not None]
        too_long += len(fitted) - len(batch)
        chats = [fitted[p][0] for p in batch]
        samples = sample_distinct(model, tokenizer, chats, candidates, step_config, at_least=run.k) if batch else []
        usable = [(p, s) for p, s in zip(batch, samples, strict=True) if s is not None]
        tokens += sum(s.token_count for _, group in usable for s in group)  # every candidate was generated
        scores = chosen_by = None
        if selector and usable:
            control = control_slots(created + len(usable), run.project.control_share)[created:]
            chosen = selector.choose([fitted[p][0] for p, _ in usable], [s for _, s in usable], run.k, control)
            usable = [(p, group) for (p, _), (group, _) in zip(usable, chosen, strict=True)]
            scores = [score for _, score in chosen]
            chosen_by = [ComparisonTask.ChosenBy.CONTROL if c else ComparisonTask.ChosenBy.ENSEMBLE for c in control]
        do_create_comparison_tasks(
            run.project, run.policy_id, usable, run.task_kind, vars(step_config), uncertainties=scores,
            messages_left_out=[fitted[p][1] for p, _ in usable], chosen_by=chosen_by,
        )  # fmt: skip
        created += len(usable)
        flagged += len(batch) - len(usable)
        done = step + len(fitted)
        report(
            done / len(prompts),
            step=done,
            phase=f"sampled {done} of {len(prompts)} prompts",
            tasks=created,
            flagged=flagged,
            tokens_per_s=tokens / (time.monotonic() - started),
        )
    if flagged:
        report.note(f"{flagged} prompts gave fewer than {run.k} distinct completions; no task was made.")
    if too_long:
        report.note(
            f"{too_long} prompts do not fit the model's context ({budget} prompt tokens with max_new_tokens) even "
            "with only their last user message; no task was made."
        )
