"""Uncertainty selection on the worker (a project's `selection`): the K of 2K sampled candidates
that make a training task, and every open training task's score, refreshed when a new reward
model lands. The request path only reads the stored score (labeling.services.queue_order)."""

from collections.abc import Callable

from django.conf import settings

from labeling.conversations import Chat
from labeling.models import ComparisonTask, Project
from training.configs import reward_model_config
from training.core.devices import Placement
from training.core.generation import Sample
from training.core.reward_model import RewardModel, load_reward_model
from training.core.selection import group_members, most_disputed_subset, task_uncertainty
from training.services import latest_reward_model

TASKS_PER_BATCH = 64  # scored and stored together


class Selector:
    """A project's latest reward model, asked which comparisons it is least sure of."""

    def __init__(self, project: Project, model: RewardModel, tokenizer):
        self.model, self.tokenizer, self.config = model, tokenizer, reward_model_config(project.recipe)

    @classmethod
    def for_project(cls, project: Project, placement: Placement) -> "Selector | None":
        """None unless the project selects by uncertainty and has an ensemble reward model (a
        single-head one, trained before the setting, cannot disagree with itself)."""
        version = latest_reward_model(project)
        if project.selection != Project.Selection.UNCERTAINTY or version is None:
            return None
        model, tokenizer = load_reward_model(settings.MODEL_STORE / version.checkpoint, placement)
        return cls(project, model, tokenizer) if model.head.out_features > 1 else None

    def choose(
        self, prompts: list[str], candidates: list[list[Sample]], k: int, control: list[bool]
    ) -> list[tuple[list[Sample], float]]:
        """Per prompt, the k candidates (in their sampled order) whose pairs the ensemble disputes
        most, or where `control` says so the first k as sampled, and that task's score."""
        members = group_members(self.model, self.tokenizer, _groups(prompts, candidates), self.config)
        chosen = []
        for group, scores, as_sampled in zip(candidates, members, control, strict=True):
            if as_sampled or len(group) <= k:
                keep = list(range(min(k, len(group))))
            else:
                keep = most_disputed_subset(scores, k)
            chosen.append(([group[i] for i in keep], task_uncertainty(scores[keep])))
        return chosen

    def task_scores(self, prompts: list[str], completions: list[list[str]]) -> list[float]:
        members = group_members(self.model, self.tokenizer, list(zip(prompts, completions, strict=True)), self.config)
        return [task_uncertainty(scores) for scores in members]


def refresh_task_uncertainty(
    project: Project, model: RewardModel, tokenizer, on_batch: Callable[[int, int], None] | None = None
) -> int:
    """Scores every open training task of the project with `model`, a batch at a time, each batch
    stored in one UPDATE; returns how many were scored. `on_batch(done, total)` after each."""
    selector = Selector(project, model, tokenizer)
    open_tasks = ComparisonTask.objects.filter(
        project=project, state=ComparisonTask.State.OPEN, kind=ComparisonTask.Kind.TRAIN
    ).order_by("id")
    ids = list(open_tasks.values_list("pk", flat=True))
    for start in range(0, len(ids), TASKS_PER_BATCH):
        tasks = list(
            ComparisonTask.objects.filter(pk__in=ids[start : start + TASKS_PER_BATCH])
            .select_related("prompt")
            .prefetch_related("items__completion")
        )
        texts = [
            [item.completion.text for item in sorted(task.items.all(), key=lambda i: i.position)] for task in tasks
        ]
        for task, score in zip(tasks, selector.task_scores([t.prompt.chat for t in tasks], texts), strict=True):
            task.uncertainty = score
        ComparisonTask.objects.bulk_update(tasks, ["uncertainty"])
        if on_batch:
            on_batch(min(start + TASKS_PER_BATCH, len(ids)), len(ids))
    return len(ids)


def _groups(prompts: list[Chat], candidates: list[list[Sample]]) -> list[tuple[Chat, list[str]]]:
    return [(prompt, [s.text for s in group]) for prompt, group in zip(prompts, candidates, strict=True)]
