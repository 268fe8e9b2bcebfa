"""Workflows over labeling rows.

`check_*` functions validate (and lock where races matter); `do_*` functions write inside a
transaction. Errors a person can fix are raised as ValidationError with a message that
names the problem; nothing is stored when one is raised.
"""

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from labeling.conversations import as_dicts, continued, turns
from labeling.importing import MAX_PROMPT_CHARS, do_import_prompts, parse_records
from labeling.models import (
    UNCERTAINTY_QUEUE_KEY,
    Assignment,
    ComparisonTask,
    Completion,
    Demonstration,
    Judge,
    Project,
    Prompt,
    Ranking,
    TaskCompletion,
    letter,
    prompt_digest,
)
from labeling.signals import conversation_continued


class SampleLike(Protocol):
    text: str
    token_count: int
    finish_reason: str


MAX_RATIONALE_CHARS = 10_000
MAX_SKIP_REASON_CHARS = 500
MAX_DEMONSTRATION_CHARS = 20_000
_LOCK_ATTEMPTS = 20


class TaskNotFound(LookupError):
    """The task does not exist or was never given to this labeler (views answer 404)."""


@dataclass(frozen=True)
class AddedPrompts:
    created: int
    duplicates: int


def do_add_prompts(project: Project, texts: Iterable[str], source: str = "") -> AddedPrompts:
    """Adds prompts to a project; texts already there (or repeated in `texts`) are skipped and counted.

    All or nothing: an empty or over-long text raises ValidationError and stores none of them.
    """
    records = ({"prompt": text} for text in texts)
    report = do_import_prompts(project, parse_records(records), source, atomic=True, unit="prompt")
    if report.rolled_back:
        first = report.invalid[0]
        raise ValidationError(f"Prompt {first.line}: {first.reason}.")
    return AddedPrompts(created=report.imported, duplicates=report.duplicates)


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
                raise ValidationError(
                    "Completion %(id)s is not one of this task's completions.", code="foreign", params={"id": cid}
                )
            if cid in seen:
                raise ValidationError(
                    "Completion %(letter)s (id %(id)s) is placed twice.",
                    code="repeated",
                    params={"letter": letter(position_of[cid]), "id": cid},
                )
            seen.add(cid)
    missing = [cid for cid in completion_ids if cid not in seen]
    if missing:
        letters = [letter(position_of[cid]) for cid in missing]
        names = ", ".join(f"{x} (id {cid})" for x, cid in zip(letters, missing, strict=True))
        raise ValidationError(
            "Not every completion is ranked: %(names)s missing.",
            code="missing",
            params={"names": names, "letters": letters},  # the ranking page names letters alone
        )
    # Within a tie group the order carries no meaning: store it in display order.
    return [sorted(group, key=position_of.__getitem__) for group in order]


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
            raise ValidationError(
                "Likert score for completion %(id)s, which is not in this task.", code="likert", params={"id": cid}
            )
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 7:
            raise ValidationError(
                "Likert score %(score)r for completion %(id)s is not 1–7.",
                code="likert",
                params={"score": score, "id": cid},
            )
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


def do_create_comparison_tasks(
    project: Project,
    policy_version_id: int,
    sampled: Sequence[tuple[Prompt, Sequence[SampleLike]]],
    kind: str,
    sampling: dict,
    sample_versions: Sequence[int] | None = None,
    uncertainties: Sequence[float | None] | None = None,
    messages_left_out: Sequence[int] | None = None,
    chosen_by: Sequence[str] | None = None,
) -> list[ComparisonTask]:
    """Stores each prompt's K sampled completions and a task showing them in a shuffled order.

    The display order is drawn from a generator seeded by the run's seed and the prompt, so it is
    fixed and reproducible. The caller made sure the K texts of a prompt differ. The completions
    come from `policy_version_id`, or the i-th of each prompt from `sample_versions[i]` (a blind
    evaluation's one completion per version). `uncertainties` are the tasks' scores for
    uncertainty selection, one per prompt, and `chosen_by` how each task's K were chosen
    (ComparisonTask.ChosenBy, default as sampled); `messages_left_out`, per prompt, how many of a
    conversation's oldest messages the model did not see (its context was too short), recorded in
    the completions' sampling settings.
    """
    seed = sampling.get("seed", 0)
    with transaction.atomic():
        completions = Completion.objects.bulk_create(
            Completion(
                prompt=prompt,
                policy_version_id=sample_versions[i] if sample_versions else policy_version_id,
                text=s.text,
                token_count=s.token_count,
                finish_reason=s.finish_reason,
                sampling={**sampling, "messages_left_out": messages_left_out[p]}
                if messages_left_out and messages_left_out[p]
                else sampling,
            )
            for p, (prompt, samples) in enumerate(sampled)
            for i, s in enumerate(samples)
        )
        tasks = ComparisonTask.objects.bulk_create(
            ComparisonTask(
                project=project,
                prompt=prompt,
                policy_version_id=policy_version_id,
                kind=kind,
                target_overlap=project.overlap,
                uncertainty=uncertainties[i] if uncertainties else None,
                chosen_by=chosen_by[i] if chosen_by else ComparisonTask.ChosenBy.SAMPLING,
            )
            for i, (prompt, _) in enumerate(sampled)
        )
        items = []
        start = 0
        for task, (prompt, samples) in zip(tasks, sampled, strict=True):
            own = completions[start : start + len(samples)]
            start += len(samples)
            random.Random(f"{seed}:{prompt.pk}").shuffle(own)
            items += [TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(own)]
        TaskCompletion.objects.bulk_create(items)
    return tasks


def _live(now: datetime) -> Q:
    return Q(state=Assignment.State.LEASED, leased_until__gt=now)


class AvailableTo(Expression):
    """True for a task the labeler may take now: not ranked or skipped by them, and with rankings
    plus other labelers' live leases below its overlap (a lease they hold keeps the task theirs).

    One SQL condition, correlated on the task's id and overlap. Written as SQL because it is
    compiled twice per handed-out task, and the same condition built from ORM subqueries cost
    about 2 ms of CPU to build and compile each time.
    """

    output_field = BooleanField()

    def __init__(self, labeler: AbstractBaseUser, now: datetime):
        super().__init__()
        self.labeler_id, self.now = labeler.pk, now
        self.task, self.overlap = F("pk"), F("target_overlap")

    def get_source_expressions(self) -> list:
        return [self.task, self.overlap]

    def set_source_expressions(self, expressions: list) -> None:
        self.task, self.overlap = expressions

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        task, _ = compiler.compile(self.task)
        overlap, _ = compiler.compile(self.overlap)
        table = connection.ops.quote_name(Assignment._meta.db_table)
        sql = (
            f"((SELECT COUNT(*) FROM {table} taken WHERE taken.task_id = {task} AND taken.labeler_id <> %s"
            f" AND (taken.state = %s OR (taken.state = %s AND taken.leased_until > %s))) < {overlap}"
            f" AND NOT EXISTS (SELECT 1 FROM {table} done WHERE done.task_id = {task} AND done.labeler_id = %s"
            " AND done.state IN (%s, %s)))"
        )
        now = connection.ops.adapt_datetimefield_value(self.now)
        leased, submitted, skipped = Assignment.State.LEASED, Assignment.State.SUBMITTED, Assignment.State.SKIPPED
        return sql, [self.labeler_id, submitted, leased, now, self.labeler_id, submitted, skipped]


def available_tasks(labeler: AbstractBaseUser, now: datetime) -> QuerySet[ComparisonTask]:
    """Open tasks the labeler may take now (AvailableTo): those they hold a live lease on, and
    those whose rankings plus other labelers' live leases are below the overlap."""
    return ComparisonTask.objects.filter(AvailableTo(labeler, now), state=ComparisonTask.State.OPEN)


def queue_order(project: Project, kind: str) -> list:
    """The order a kind's open tasks are handed out in, the order of a partial index of open tasks
    (ordered by id alone, PostgreSQL may walk the primary key instead, through every finished task
    and every other project's task below the first open one).

    Oldest first by (created_at, id); with uncertainty selection, training tasks of the control share
    first (so the reward model's fresh-label accuracy is always measured), then those the reward
    model's ensemble disputes most, unscored ones last. Eval tasks always go oldest first: they
    measure the reward model on fresh labels, and a sample it chose would flatter or doom it.
    """
    if kind == ComparisonTask.Kind.TRAIN and project.selection == Project.Selection.UNCERTAINTY:
        return [UNCERTAINTY_QUEUE_KEY.desc(), "created_at", "id"]
    return ["created_at", "id"]


def _lock_available_task(
    candidates: QuerySet[ComparisonTask], kinds: list[str], labeler: AbstractBaseUser, now: datetime, project: Project
) -> ComparisonTask | None:
    """Locks the first candidate in `queue_order` of the first kind that has one, skipping rows
    others hold locked.

    The candidate query's counts come from its statement's snapshot: a lease committed by the
    previous holder of the lock it then takes is not in them. So once the row is locked, the
    task is checked again in a new statement, which sees every lease and ranking added under
    that lock. When every candidate is locked by a concurrent assignment it tries again once
    those commit, so a labeler is told "nothing left" only when nothing is.
    """
    full: list[int] = []
    for attempt in range(_LOCK_ATTEMPTS):
        for kind in kinds:
            while True:
                of_kind = candidates.filter(~Q(pk__in=full), kind=kind) if full else candidates.filter(kind=kind)
                locking = of_kind.order_by(*queue_order(project, kind)).select_for_update(
                    skip_locked=True, of=("self",)
                )
                task = locking.select_related("prompt")[:1].first()
                if task is None:
                    break
                if available_tasks(labeler, now).filter(pk=task.pk).exists():
                    return task
                full.append(task.pk)
        if not candidates.exclude(pk__in=full).exists():
            return None
        time.sleep(0.005 * (attempt + 1))
    return None


def do_assign_next_task(project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    """The labeler's next task in a project, leased to them; None when nothing is left.

    A live lease the labeler already holds is returned again (a reload shows the same task).
    Otherwise the first available task in `queue_order` is locked with SELECT ... FOR UPDATE SKIP LOCKED, so
    concurrent labelers never take the same slot; eval and train tasks are mixed by the
    project's eval_ratio. On SQLite (the demo) the lock clause is left out.
    """
    now = timezone.now()
    with transaction.atomic():
        held = (
            Assignment.objects.filter(_live(now), labeler=labeler, task__project=project)
            .filter(task__state__in=[ComparisonTask.State.OPEN, ComparisonTask.State.GOLD])
            .select_related("task__prompt")
            .order_by("id")
            .first()
        )
        if held is not None:
            return held
        kinds = [ComparisonTask.Kind.TRAIN, ComparisonTask.Kind.EVAL]
        if random.random() < project.eval_ratio:
            kinds.reverse()
        task = gold_task_to_hand_out(project, labeler)
        if task is None:
            candidates = available_tasks(labeler, now).filter(project=project)
            task = _lock_available_task(candidates, kinds, labeler, now, project)
        if task is None:
            return None
        assignment = _lease(task, labeler, now + timedelta(seconds=project.lease_seconds))
    return assignment


def _lease(task: ComparisonTask, labeler: AbstractBaseUser, until: datetime) -> Assignment:
    """Leases a task the caller holds locked, in one statement (INSERT ... ON CONFLICT DO UPDATE):
    a new assignment, or the labeler's expired lease on it renewed."""
    assignment = Assignment(task=task, labeler=labeler, state=Assignment.State.LEASED, leased_until=until)
    Assignment.objects.bulk_create(
        [assignment],
        update_conflicts=True,
        unique_fields=["task", "labeler"],
        update_fields=["state", "leased_until"],
    )
    return assignment


def _lock_assignment(task_id: int, labeler: AbstractBaseUser) -> tuple[ComparisonTask, Assignment, list[int]]:
    """Locks the task's row; returns the task, the labeler's assignment and the completion ids in
    display order. Raises TaskNotFound if the task was never given to them.

    The completion ids are read with the lock (they never change). The assignment is read in a
    new statement, which sees everything committed under that lock; its `ranking_id` is the id of
    the labeler's stored ranking of the task, or None.
    """
    items = list(
        TaskCompletion.objects.filter(task_id=task_id)
        .select_related("task")
        .select_for_update(of=("task",))
        .order_by("position")
    )
    stored = Ranking.objects.filter(task_id=task_id, labeler=labeler).values("pk")
    assignment = (
        Assignment.objects.filter(task_id=task_id, labeler=labeler).annotate(ranking_id=Subquery(stored)).first()
    )
    if not items or assignment is None:
        raise TaskNotFound(task_id)
    return items[0].task, assignment, [item.completion_id for item in items]


def check_task_still_takes_ranking(task: ComparisonTask, assignment: Assignment, now: datetime) -> None:
    """A live lease holds a slot; after it expires, a ranking is taken only if the task still needs one."""
    if assignment.state == Assignment.State.SKIPPED:
        raise ValidationError("You skipped this task, so it cannot be ranked now.", code="skipped")
    if assignment.state == Assignment.State.LEASED and assignment.leased_until > now:
        return
    if task.state == ComparisonTask.State.GOLD:  # not capped by the overlap: every labeler may rank it
        return
    others = task.assignments.filter(Q(state=Assignment.State.SUBMITTED) | _live(now)).exclude(pk=assignment.pk)
    if task.state != ComparisonTask.State.OPEN or others.count() >= task.target_overlap:
        raise ValidationError(
            "Your time on this task ran out and other labelers have since ranked it, "
            "so this ranking was not stored. Thank you: the next task is ready.",
            code="lease_expired",
        )


def do_submit_ranking(
    task_id: int,
    labeler: AbstractBaseUser,
    order: object,
    likert: object = None,
    rationale: str = "",
    flags: object = (),
    time_spent_ms: int | None = None,
    prefilled: bool = False,
) -> tuple[Ranking, bool]:
    """Stores a labeler's ranking of a task they were given; returns (ranking, created).

    Raises TaskNotFound if the task was never given to them, ValidationError naming the problem
    otherwise. The same ranking submitted again (a double click, a retry) returns the stored row
    with created=False; a different second ranking is refused. The ranking, the closed lease and
    the task's state change are written in one transaction. `prefilled`: the page started from the
    AI judge's order, recorded with whether the labeler changed it. AI rankings do not count toward
    the task's overlap: the task is complete when enough people ranked it.
    """
    now = timezone.now()
    with transaction.atomic():
        task, assignment, completion_ids = _lock_assignment(task_id, labeler)
        cleaned_order = check_order(completion_ids, order)
        cleaned_likert = check_likert(completion_ids, likert)
        cleaned_flags = check_flags(list(flags or []))
        cleaned_rationale = check_rationale(rationale or "")
        if assignment.ranking_id is not None:
            stored = Ranking.objects.get(pk=assignment.ranking_id)
            if stored.order == cleaned_order and stored.likert == cleaned_likert:
                return stored, False
            raise ValidationError(f"You have already ranked task {task.pk}; a ranking cannot be changed.", code="done")
        check_task_still_takes_ranking(task, assignment, now)
        ranking = Ranking.objects.create(
            task=task,
            labeler=labeler,
            order=cleaned_order,
            likert=cleaned_likert,
            rationale=cleaned_rationale,
            flags=cleaned_flags,
            time_spent_ms=time_spent_ms,
            suggestion=suggestion_record(task, cleaned_order) if prefilled else {},
        )
        assignment.state = Assignment.State.SUBMITTED
        assignment.save(update_fields=["state"])
        rankings = (
            Ranking.objects.filter(task=OuterRef("pk"), ai=False).order_by().values("task").annotate(n=Count("pk"))
        )
        ComparisonTask.objects.filter(
            pk=task.pk, state=ComparisonTask.State.OPEN, target_overlap__lte=Subquery(rankings.values("n"))
        ).update(state=ComparisonTask.State.COMPLETE)
    return ranking, True


def do_skip_task(task_id: int, labeler: AbstractBaseUser, reason: str) -> Assignment:
    """Gives a task back with a reason; the labeler is not offered it again."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why you skip this task.", code="skip_reason")
    if len(reason) > MAX_SKIP_REASON_CHARS:
        raise ValidationError(f"The reason is over {MAX_SKIP_REASON_CHARS} characters.", code="skip_reason")
    with transaction.atomic():
        _, assignment, _ = _lock_assignment(task_id, labeler)
        if assignment.state == Assignment.State.SUBMITTED:
            raise ValidationError("You already ranked this task.", code="done")
        assignment.state = Assignment.State.SKIPPED
        assignment.skip_reason = reason
        assignment.save(update_fields=["state", "skip_reason"])
    return assignment


def do_ask_for_demonstrations(prompts: QuerySet[Prompt], ask: bool) -> int:
    """Marks prompts as needing (or no longer needing) labeler-written ideal answers; returns the count."""
    return prompts.update(needs_demonstration=ask)


def do_hold_out_prompts(prompts: QuerySet[Prompt], hold_out: bool) -> int:
    """Keeps prompts for evaluation (or returns them to training); returns the count.

    A prompt that already has training comparisons has been trained on, so it cannot be held out.
    """
    if hold_out:
        trained = prompts.filter(tasks__kind=ComparisonTask.Kind.TRAIN).distinct().count()
        if trained:
            raise ValidationError(
                f"{trained} of these prompts already have training comparisons, so the model has learned from "
                "them: hold out prompts before they are sampled for training.",
                code="trained",
            )
    return prompts.update(heldout=hold_out)


def do_exclude_rankings(rankings: QuerySet[Ranking], exclude: bool) -> int:
    """Marks rankings as unusable for training (or usable again); they stay stored either way."""
    return rankings.update(excluded=exclude)


def prompts_needing_demonstration(project: Project | OuterRef, labeler: AbstractBaseUser) -> QuerySet[Prompt]:
    written = Demonstration.objects.filter(prompt=OuterRef("pk"), labeler=labeler)
    return Prompt.objects.filter(project=project, needs_demonstration=True).exclude(Exists(written)).order_by("id")


def do_store_demonstration(prompt: Prompt, labeler: AbstractBaseUser, text: str) -> Demonstration:
    """Stores a labeler's ideal answer to a prompt marked as needing demonstrations."""
    if not prompt.needs_demonstration:
        raise ValidationError("This prompt does not ask for a demonstration.", code="not_needed")
    if not text.strip():
        raise ValidationError("Write an answer before submitting.", code="empty")
    if len(text) > MAX_DEMONSTRATION_CHARS:
        raise ValidationError(
            f"The answer is {len(text):,} characters; the limit is {MAX_DEMONSTRATION_CHARS:,}.", code="too_long"
        )
    try:
        with transaction.atomic():
            return Demonstration.objects.create(prompt=prompt, labeler=labeler, text=text)
    except IntegrityError:  # one per labeler and prompt: a double submit returns the stored answer
        stored = Demonstration.objects.get(prompt=prompt, labeler=labeler)
        if stored.text == text:
            return stored
        raise ValidationError("You already wrote a demonstration for this prompt.", code="done") from None


# --- conversations ------------------------------------------------------------------------------


def best_reply(task: ComparisonTask, ranking: Ranking) -> Completion:
    """The reply a ranking put first (of a tie at the top, the one shown first)."""
    top = set(ranking.order[0])
    return next(c for c in task.display_completions() if c.pk in top)


def continuation_refused(task: ComparisonTask) -> str:
    """Why the task's conversation cannot be carried on, in words, or "" when it can."""
    project = task.project
    if not project.continue_conversations:
        return "This project does not continue conversations."
    if task.kind != ComparisonTask.Kind.TRAIN:
        return "Only training comparisons are continued."
    if turns(task.prompt.chat) >= project.max_turns:
        return f"This conversation has reached the project's limit of {project.max_turns} user turns."
    return ""


def do_continue_conversation(task_id: int, labeler: AbstractBaseUser, text: str) -> tuple[Prompt, bool]:
    """A new prompt: the task's conversation, the reply the labeler's ranking put first, and their next
    user message, linked to the task's prompt as its parent; (the prompt, whether it is new). The same
    message sent twice (a double submit) gives the stored prompt back. Once committed, training is told
    (`conversation_continued`) and samples its replies."""
    text = text.strip()
    with transaction.atomic():
        task, assignment, _ = _lock_assignment(task_id, labeler)
        ranking = Ranking.objects.filter(task=task, labeler=labeler).first()
        if assignment.state != Assignment.State.SUBMITTED or ranking is None:
            raise ValidationError(
                "Rank the replies first: the conversation goes on from the best one.", code="unranked"
            )
        refused = continuation_refused(task)
        if refused:
            raise ValidationError(refused, code="refused")
        if not text:
            raise ValidationError("Write the user's next message first.", code="empty")
        messages = continued(task.prompt.chat, best_reply(task, ranking).text, text)
        size = sum(len(m.content) for m in messages)
        if size > MAX_PROMPT_CHARS:
            raise ValidationError(
                f"The conversation would be {size:,} characters; the limit is {MAX_PROMPT_CHARS:,}.", code="too_long"
            )
        prompt, created = Prompt.objects.get_or_create(
            project=task.project,
            text_sha256=prompt_digest(messages),
            defaults={"text": text, "messages": as_dicts(messages), "parent": task.prompt, "source": "continued",
                      "metadata": {"continued_by": labeler.get_username(), "from_task": task.pk}},
        )  # fmt: skip
        if created:
            transaction.on_commit(lambda: conversation_continued.send(sender=Prompt, prompt=prompt))
    return prompt, created


def conversation_tree(root: Prompt) -> list[tuple[int, Prompt]]:
    """(depth, prompt) for a conversation and every continuation of it, depth first, oldest first."""
    by_parent: dict[int, list[Prompt]] = {}
    level, found = [root.pk], []
    while level:  # one query per depth, not per prompt
        children = list(Prompt.objects.filter(parent_id__in=level).order_by("id"))
        for child in children:
            by_parent.setdefault(child.parent_id, []).append(child)
        level = [child.pk for child in children]
    stack = [(0, root)]
    while stack:
        depth, prompt = stack.pop()
        found.append((depth, prompt))
        stack.extend((depth + 1, child) for child in reversed(by_parent.get(prompt.pk, [])))
    return found


# --- gold tasks --------------------------------------------------------------------------------


def check_gold_order(task: ComparisonTask, order: object) -> list[list[int]] | None:
    """Validates a gold task's expected order like a ranking; None unmarks the task.

    A blind-evaluation (eval) task cannot be gold, and a gold task that labelers have ranked stays
    gold: its rankings measure them and must not flow back into training.
    """
    if order in (None, "", []):
        if task.state == ComparisonTask.State.GOLD and task.rankings.exists():
            raise ValidationError("Labelers have ranked this gold task, so it stays gold.", code="gold_ranked")
        return None
    if task.kind != ComparisonTask.Kind.TRAIN:
        raise ValidationError("Only a training comparison can be a gold task.", code="gold_kind")
    completion_ids = list(task.items.order_by("position").values_list("completion_id", flat=True))
    if not completion_ids:
        raise ValidationError("The task has no completions yet: save them first.", code="gold_empty")
    return check_order(completion_ids, order)


def do_set_gold_order(task: ComparisonTask, order: object) -> ComparisonTask:
    """Marks a task gold with its expected order (or unmarks it with None).

    A gold task leaves the ordinary queue and training: labelers meet it at the project's gold
    rate, each once, and its rankings (earlier ones included) count towards gold accuracy only.
    An unmarked task goes back to open, or complete if it has its overlap, or retired if its
    policy was retired meanwhile.
    """
    with transaction.atomic():
        task = ComparisonTask.objects.select_for_update().get(pk=task.pk)
        cleaned = check_gold_order(task, order)
        if cleaned is not None:
            task.state, task.gold_order = ComparisonTask.State.GOLD, cleaned
        elif task.state == ComparisonTask.State.GOLD:
            task.state, task.gold_order = _state_without_gold(task), None
        task.save(update_fields=["state", "gold_order"])
    return task


RETIRED_POLICY = "retired"
"""The status of a policy version that no longer samples (training's PolicyVersion, read through the
task's `policy_version`; tests/training/test_recipe.py checks it against training's): its open tasks
are retired with it."""


def _state_without_gold(task: ComparisonTask) -> str:
    if task.policy_version.status == RETIRED_POLICY:
        return ComparisonTask.State.RETIRED
    full = task.rankings.count() >= task.target_overlap
    return ComparisonTask.State.COMPLETE if full else ComparisonTask.State.OPEN


def gold_task_to_hand_out(project: Project, labeler: AbstractBaseUser) -> ComparisonTask | None:
    """At the project's gold rate, the oldest gold task the labeler has not ranked or skipped.

    Gold tasks are not capped by the overlap and look like any other task to the labeler; the
    caller leases the task (no row lock is needed, since no count is checked).
    """
    if project.gold_rate <= 0 or random.random() >= project.gold_rate:
        return None
    done = Assignment.objects.filter(
        task=OuterRef("pk"), labeler=labeler, state__in=[Assignment.State.SUBMITTED, Assignment.State.SKIPPED]
    )
    gold = ComparisonTask.objects.filter(project=project, state=ComparisonTask.State.GOLD)
    return gold.exclude(Exists(done)).order_by("id").first()


# --- the AI judge ----------------------------------------------------------------------------------


def do_set_judge(project: Project, **fields) -> Judge:
    """Creates or changes the project's AI judge; raises ValidationError naming what is wrong, and
    then stores nothing."""
    judge = Judge.objects.filter(project=project).first() or Judge(project=project)
    unknown = set(fields) - {"backend", "model", "base_url", "api_key_env", "judging_prompt", "weight_cap", "max_calls"}
    if unknown:
        raise ValidationError(f"A judge has no setting {sorted(unknown)[0]!r}.", code="unknown")
    for name, value in fields.items():
        setattr(judge, name, value)
    judge.full_clean(exclude=["account"])
    with transaction.atomic():
        judge.save()
    return judge


def judge_order(task: ComparisonTask) -> list[list[int]] | None:
    """The AI judge's order of the task, or None where it has not ranked it."""
    return Ranking.objects.filter(task=task, ai=True).values_list("order", flat=True).first()


def same_order(a: list[list[int]], b: list[list[int]]) -> bool:
    """Whether two orders say the same thing (within a tie group the order carries no meaning)."""
    return [sorted(group) for group in a] == [sorted(group) for group in b]


def suggestion_record(task: ComparisonTask, order: list[list[int]]) -> dict:
    """What a ranking made from a pre-filled page records: the judge's order and whether it changed
    (nothing where the project does not pre-fill: the flag cannot take a ranking out of agreement)."""
    if task.project.suggestions != Project.Suggestions.PREFILLED:
        return {}
    suggested = judge_order(task)
    if suggested is None:
        return {}
    return {"shown": "prefilled", "order": suggested, "changed": not same_order(suggested, order)}


def tasks_for_judge(project: Project, judge: Judge) -> QuerySet[ComparisonTask]:
    """The training and gold tasks the judge has not ranked, gold first (they measure it), then open
    tasks (the ones people will see next), then complete ones; retired tasks never."""
    ranked = Ranking.objects.filter(task=OuterRef("pk"), labeler=judge.account_id)
    states = [ComparisonTask.State.GOLD, ComparisonTask.State.OPEN, ComparisonTask.State.COMPLETE]
    first = Case(*(When(state=state, then=Value(place)) for place, state in enumerate(states)))
    tasks = ComparisonTask.objects.filter(project=project, kind=ComparisonTask.Kind.TRAIN, state__in=states)
    return tasks.exclude(Exists(ranked)).select_related("prompt").order_by(first, "id")


def do_store_ai_ranking(task_id: int, judge: Judge, order: object, judged_by: dict) -> Ranking:
    """Stores the judge's whole order of a task (idempotent: a task it already ranked keeps its first
    order). No lease and no overlap: people still rank the task."""
    with transaction.atomic():
        items = list(TaskCompletion.objects.filter(task_id=task_id).select_for_update().order_by("position"))
        if not items:
            raise TaskNotFound(task_id)
        cleaned = check_order([item.completion_id for item in items], order)
        ranking, _ = Ranking.objects.get_or_create(
            task_id=task_id,
            labeler_id=judge.account_id,
            defaults={"order": cleaned, "ai": True, "judged_by": judged_by},
        )
    return ranking
