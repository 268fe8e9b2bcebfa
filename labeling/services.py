"""Workflows over labeling rows.

`check_*` functions validate (and lock where races matter); `do_*` functions write inside a
transaction. Errors a person can fix are raised as ValidationError with a message that
names the problem; nothing is stored when one is raised.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import ComparisonTask, Project, Prompt, Ranking, text_digest

MAX_RATIONALE_CHARS = 10_000


@dataclass(frozen=True)
class AddedPrompts:
    created: int
    duplicates: int


def do_add_prompts(project: Project, texts: Iterable[str], source: str = "") -> AddedPrompts:
    """Adds prompts to a project; texts already there (or repeated in `texts`) are skipped and counted."""
    by_digest: dict[str, str] = {}
    given = 0
    for text in texts:
        if not text.strip():
            raise ValidationError("A prompt cannot be empty.")
        given += 1
        by_digest.setdefault(text_digest(text), text)
    with transaction.atomic():
        existing = set(
            Prompt.objects.filter(project=project, text_sha256__in=by_digest).values_list("text_sha256", flat=True)
        )
        new = [
            Prompt(project=project, text=text, text_sha256=digest, source=source)
            for digest, text in by_digest.items()
            if digest not in existing
        ]
        Prompt.objects.bulk_create(new)
    return AddedPrompts(created=len(new), duplicates=given - len(new))


def _letter(position: int) -> str:
    return "ABCDEFGHI"[position]


def check_order(completion_ids: Sequence[int], order: object) -> list[list[int]]:
    """Validates a best-to-worst order of tie groups against a task's completions (in display order).

    Returns the order as a list of lists of ints; raises ValidationError naming the first problem.
    """
    if not isinstance(order, list) or not order:
        raise ValidationError("The ranking is empty: place every completion.", code="empty")
    position_of = {cid: pos for pos, cid in enumerate(completion_ids)}
    seen: set[int] = set()
    for rank, group in enumerate(order, start=1):
        if not isinstance(group, list) or not group:
            raise ValidationError(f"Rank {rank} is empty: each rank holds one or more completions.", code="empty_rank")
        for cid in group:
            if isinstance(cid, bool) or not isinstance(cid, int):
                raise ValidationError(f"{cid!r} at rank {rank} is not a completion id.", code="not_an_id")
            if cid not in position_of:
                raise ValidationError(f"Completion {cid} is not one of this task's completions.", code="foreign")
            if cid in seen:
                raise ValidationError(
                    f"Completion {_letter(position_of[cid])} (id {cid}) is placed twice.", code="repeated"
                )
            seen.add(cid)
    missing = [cid for cid in completion_ids if cid not in seen]
    if missing:
        names = ", ".join(f"{_letter(position_of[cid])} (id {cid})" for cid in missing)
        raise ValidationError(f"Not every completion is ranked: {names} missing.", code="missing")
    return [list(group) for group in order]


def check_likert(completion_ids: Sequence[int], likert: object) -> dict[str, int]:
    if not likert:
        return {}
    if not isinstance(likert, dict):
        raise ValidationError("Likert scores must map completion ids to 1–7.", code="likert")
    cleaned = {}
    for key, score in likert.items():
        try:
            cid = int(key)
        except (TypeError, ValueError):
            raise ValidationError(f"Likert key {key!r} is not a completion id.", code="likert") from None
        if cid not in completion_ids:
            raise ValidationError(f"Likert score for completion {cid}, which is not in this task.", code="likert")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 7:
            raise ValidationError(f"Likert score {score!r} for completion {cid} is not 1–7.", code="likert")
        cleaned[str(cid)] = score
    return cleaned


def check_flags(flags: object) -> list[str]:
    allowed = set(Ranking.Flag.values)
    if not isinstance(flags, list | tuple) or any(flag not in allowed for flag in flags):
        raise ValidationError(f"Flags must be some of: {', '.join(sorted(allowed))}.", code="flags")
    return sorted(set(flags))


def check_rationale(rationale: str) -> str:
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise ValidationError(
            f"The rationale is {len(rationale):,} characters; the limit is {MAX_RATIONALE_CHARS:,}.", code="rationale"
        )
    return rationale


def do_store_ranking(
    task: ComparisonTask,
    labeler: AbstractBaseUser,
    order: object,
    likert: object = None,
    rationale: str = "",
    flags: object = (),
    time_spent_ms: int | None = None,
) -> tuple[Ranking, bool]:
    """Stores a labeler's ranking of a task; returns (ranking, created).

    The same ranking submitted again (a double click, a retry) returns the stored row with
    created=False; a different second ranking by the same labeler is refused. Closes the task
    when it reaches its overlap.
    """
    with transaction.atomic():
        task = ComparisonTask.objects.select_for_update().get(pk=task.pk)
        completion_ids = list(task.items.order_by("position").values_list("completion_id", flat=True))
        cleaned_order = check_order(completion_ids, order)
        cleaned_likert = check_likert(completion_ids, likert)
        cleaned_flags = check_flags(list(flags or []))
        cleaned_rationale = check_rationale(rationale or "")
        stored = Ranking.objects.filter(task=task, labeler=labeler).first()
        if stored is not None:
            if stored.order == cleaned_order and stored.likert == cleaned_likert:
                return stored, False
            raise ValidationError(f"You have already ranked task {task.pk}; a ranking cannot be changed.", code="done")
        ranking = Ranking.objects.create(
            task=task,
            labeler=labeler,
            order=cleaned_order,
            likert=cleaned_likert,
            rationale=cleaned_rationale,
            flags=cleaned_flags,
            time_spent_ms=time_spent_ms,
        )
        if task.rankings.count() >= task.target_overlap:
            task.state = ComparisonTask.State.COMPLETE
            task.save(update_fields=["state"])
    return ranking, True

