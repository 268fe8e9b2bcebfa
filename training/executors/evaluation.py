"""Sampling policy versions side by side, and judging them with a scoring function (win rate of b
over a), stored as a finished eval run.

Best-of-n is the baseline that shows what the reward model alone buys, with no RL: side b samples
n completions per prompt and keeps the one the reward model scores highest.
"""

from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from labeling.conversations import Chat, last_message
from labeling.models import Project
from training.configs import reward_model_config, sampling_config
from training.core.devices import Placement, peak_memory_mib
from training.core.generation import Sample, sample
from training.core.loading import load_model
from training.core.reward_model import load_reward_model, score_groups
from training.executors.placement import worker_placement
from training.models import PolicyVersion, RewardModelVersion, TrainingRun

Preference = Callable[[str, list[str]], list[float]]


def sample_one_each(
    project: Project, versions: list[PolicyVersion], prompts: list[Chat], seeds: list[int], placement: Placement
) -> list[list[Sample]]:
    """One completion per prompt from each version, with the project's sampling settings; version
    i samples with seeds[i]. One model is loaded at a time."""
    out = []
    for version, seed in zip(versions, seeds, strict=True):
        model, tokenizer = load_model(version.checkpoint, settings.MODEL_STORE, placement, trainable=False)
        out.append([group[0] for group in sample(model, tokenizer, prompts, 1, sampling_config(project.recipe, seed))])
        del model
    return out


def best_of_n(
    project: Project, version: PolicyVersion, prompts: list[Chat], n: int, reward_model: RewardModelVersion, seed: int,
    placement: Placement,
) -> list[Sample]:  # fmt: skip
    """Per prompt, of n completions from `version` (the project's sampling settings), the one
    `reward_model` scores highest (the first of equals). The policy is freed before the RM loads."""
    model, tokenizer = load_model(version.checkpoint, settings.MODEL_STORE, placement, trainable=False)
    groups = sample(model, tokenizer, prompts, n, sampling_config(project.recipe, seed))
    del model
    rm, rm_tokenizer = load_reward_model(settings.MODEL_STORE / reward_model.checkpoint, placement)
    texts = [(prompt, [s.text for s in group]) for prompt, group in zip(prompts, groups, strict=True)]
    scores = score_groups(rm, rm_tokenizer, texts, reward_model_config(project.recipe).max_length)
    return [group[row.index(max(row))] for group, row in zip(groups, scores, strict=True)]


def evaluate_policies(
    project: Project,
    a: PolicyVersion,
    b: PolicyVersion,
    prompts: list[Chat],
    preference: Preference,
    label: str,
    seed: int = 0,
    best_of: int = 1,
    reward_model: RewardModelVersion | None = None,
) -> TrainingRun:
    """Samples one completion per prompt from each version (same settings and seed), or for b with
    `best_of` > 1 the best of that many by `reward_model` (then required); scores each pair with
    `preference`, and stores the win rate of b over a (ties count half) as an eval run."""
    placement = worker_placement()
    placement.reset_peak_memory()
    if best_of == 1:
        samples_a, samples_b = sample_one_each(project, [a, b], prompts, [seed, seed], placement)
    else:
        [samples_a] = sample_one_each(project, [a], prompts, [seed], placement)
        samples_b = best_of_n(project, b, prompts, best_of, reward_model, seed, placement)
    wins, score_a, score_b = 0.0, 0.0, 0.0
    for prompt, sample_a, sample_b in zip(prompts, samples_a, samples_b, strict=True):
        sa, sb = preference(last_message(prompt), [sample_a.text, sample_b.text])  # as labelers read it
        wins += 1.0 if sb > sa else 0.5 if sb == sa else 0.0
        score_a, score_b = score_a + sa, score_b + sb
    n = len(prompts)
    figures = {
        "n": n,
        "win_rate_b_over_a": wins / n,
        "mean_score_a": score_a / n,
        "mean_score_b": score_b / n,
        "best_of": best_of,
        "reward_model_version": reward_model.version if reward_model else None,
    }
    now = timezone.now()
    return TrainingRun.objects.create(
        project=project,
        kind=TrainingRun.Kind.EVAL,
        status=TrainingRun.Status.SUCCEEDED,
        progress=1.0,
        policy=b,
        baseline=a,
        reward_model=reward_model,
        prompts=n,
        preference=label,
        config=vars(sampling_config(project.recipe, seed)),
        metrics=[{"time": now.isoformat(), **figures}],
        hardware={**placement.describe(), "peak_memory_mib": peak_memory_mib(placement.device)},
        started_at=now,
        finished_at=now,
    )
