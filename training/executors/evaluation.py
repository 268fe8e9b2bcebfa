"""Sampling policy versions side by side, and judging them with a scoring function (win rate of b
over a), stored as a finished eval run."""

from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from labeling.models import Project
from training.configs import sampling_config
from training.core.generation import Sample, sample
from training.core.loading import load_model
from training.models import PolicyVersion, TrainingRun

Preference = Callable[[str, list[str]], list[float]]


def sample_one_each(
    project: Project, versions: list[PolicyVersion], prompts: list[str], seeds: list[int]
) -> list[list[Sample]]:
    """One completion per prompt from each version, with the project's sampling settings; version
    i samples with seeds[i]. One model is loaded at a time."""
    out = []
    for version, seed in zip(versions, seeds, strict=True):
        model, tokenizer = load_model(version.checkpoint, settings.MODEL_STORE)
        out.append([group[0] for group in sample(model, tokenizer, prompts, 1, sampling_config(project, seed))])
        del model
    return out


def evaluate_policies(
    project: Project,
    a: PolicyVersion,
    b: PolicyVersion,
    prompts: list[str],
    preference: Preference,
    label: str,
    seed: int = 0,
) -> TrainingRun:
    """Samples one completion per prompt from each version (same settings and seed), scores each
    pair with `preference`, and stores the win rate of b over a (ties count half) as an eval run."""
    samples_a, samples_b = sample_one_each(project, [a, b], prompts, seeds=[seed, seed])
    wins, score_a, score_b = 0.0, 0.0, 0.0
    for prompt, sample_a, sample_b in zip(prompts, samples_a, samples_b, strict=True):
        sa, sb = preference(prompt, [sample_a.text, sample_b.text])
        wins += 1.0 if sb > sa else 0.5 if sb == sa else 0.0
        score_a, score_b = score_a + sa, score_b + sb
    n = len(prompts)
    figures = {"n": n, "win_rate_b_over_a": wins / n, "mean_score_a": score_a / n, "mean_score_b": score_b / n}
    now = timezone.now()
    return TrainingRun.objects.create(
        project=project,
        kind=TrainingRun.Kind.EVAL,
        status=TrainingRun.Status.SUCCEEDED,
        progress=1.0,
        policy=b,
        baseline=a,
        prompts=n,
        preference=label,
        config=vars(sampling_config(project, seed)),
        metrics=[{"time": now.isoformat(), **figures}],
        started_at=now,
        finished_at=now,
    )
