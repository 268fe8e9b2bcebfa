"""What the ranking page shows for an assignment."""

from dataclasses import dataclass

from django.http import QueryDict
from django.utils import timezone

from labeling.models import Assignment, Completion, letter


@dataclass
class ShownCompletion:
    completion: Completion
    letter: str
    rank: str  # the posted rank, refilled after an error
    likert: str


def task_context(assignment: Assignment, posted: QueryDict | None = None) -> dict:
    task = assignment.task
    posted = posted or QueryDict()
    shown = [
        ShownCompletion(
            completion=completion,
            letter=letter(position),
            rank=posted.get(f"rank-{completion.pk}", ""),
            likert=posted.get(f"likert-{completion.pk}", ""),
        )
        for position, completion in enumerate(task.display_completions())
    ]
    return {
        "project": task.project,
        "task": task,
        "assignment": assignment,
        "completions": shown,
        "last_letter": letter(len(shown) - 1),
        "rank_choices": range(1, len(shown) + 1),
        "likert_choices": range(1, 8),
        "lease_expired": assignment.leased_until <= timezone.now(),
        "posted_rationale": posted.get("rationale", ""),
        "posted_flags": posted.getlist("flags"),
    }
