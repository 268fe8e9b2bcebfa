"""What the ranking page shows for an assignment."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone

from labeling.conversations import Message
from labeling.models import Assignment, ComparisonTask, Completion, Project, Prompt, Ranking, letter, order_in_letters
from labeling.services import best_reply, continuation_refused, judge_order
from labeling.statistics import pairwise_agreement

RECENT_MESSAGES = 4  # a long conversation shows its last messages; the earlier ones open on demand


@dataclass
class ShownCompletion:
    completion: Completion
    letter: str
    rank: str  # the posted rank, refilled after an error
    likert: str


@dataclass
class Thread:
    """A conversation as the ranking page shows it above the replies."""

    system: Message | None
    earlier: list[Message]
    recent: list[Message]
    left_out: int
    """How many of the oldest messages the model did not see (they did not fit its context)."""


def thread(prompt: Prompt, completions: list[Completion] = ()) -> Thread | None:
    """The prompt's conversation as the page shows it, or None for a single-turn prompt; `completions`
    (a task's) say how many of its oldest messages the model did not see."""
    chat = prompt.chat
    if isinstance(chat, str):
        return None
    system = chat[0] if chat[0].role == "system" else None
    turns = list(chat[1:] if system else chat)
    left_out = max((c.sampling.get("messages_left_out", 0) for c in completions), default=0)
    cut = max(len(turns) - RECENT_MESSAGES, 0)
    return Thread(system, turns[:cut], turns[cut:], left_out)


def _place_numbers(order: list[list[int]]) -> dict[int, str]:
    """Completion id -> its rank number as the form's selects hold it, 1 = best, ties sharing one."""
    return {cid: str(place) for place, group in enumerate(order, start=1) for cid in group}


def task_context(assignment: Assignment, posted: QueryDict | None = None) -> dict:
    """The ranking form; with pre-filled suggestions, set in the AI judge's order when it ranked the task
    (after a refused submit, as the labeler posted it)."""
    task = assignment.task
    suggested = judge_order(task) if task.project.suggestions == Project.Suggestions.PREFILLED else None
    prefilled = posted.get("prefilled") == "1" if posted is not None else suggested is not None
    if posted is None and suggested is not None:
        posted = QueryDict(mutable=True)
        for cid, place in _place_numbers(suggested).items():
            posted[f"rank-{cid}"] = place
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
        "thread": thread(task.prompt, [s.completion for s in shown]),
        "assignment": assignment,
        "completions": shown,
        "last_letter": letter(len(shown) - 1),
        "rank_choices": range(1, len(shown) + 1),
        "likert_choices": range(1, 8),
        "lease_expired": assignment.leased_until <= timezone.now(),
        "posted_rationale": posted.get("rationale", ""),
        "posted_flags": posted.getlist("flags"),
        "prefilled": prefilled,
    }


def submitted_context(assignment: Assignment, ranking: Ranking | None) -> dict:
    """A task the labeler already ranked (or skipped), read-only: its answers with the ranks they gave."""
    task = assignment.task
    shown = task.display_completions()
    position_of = {completion.pk: position for position, completion in enumerate(shown)}
    rank_of = {}
    if ranking is not None:
        for place, group in enumerate(ranking.order, start=1):
            rank_of.update({cid: str(place) for cid in group})
    completions = [ShownCompletion(c, letter(i), rank_of.get(c.pk, ""), "") for i, c in enumerate(shown)]
    letters = order_in_letters(ranking.order, position_of) if ranking is not None else ""
    suggestion = judge_comparison(task, ranking, position_of) if ranking is not None else ""
    best = ""
    if ranking is not None and not continuation_refused(task):
        best = letter(position_of[best_reply(task, ranking).pk])
    return {
        "project": task.project,
        "task": task,
        "thread": thread(task.prompt, shown),
        "assignment": assignment,
        "completions": completions,
        "submitted": {"ranking": ranking, "letters": letters, "continue_from": best, "suggestion": suggestion},
    }


def judge_comparison(task: ComparisonTask, ranking: Ranking, position_of: dict[int, int] | None = None) -> str:
    """Once a labeler's ranking is sent (suggestions on, the AI judge ranked the task): the judge's order
    and how many of the pairs both ordered they agree on; empty otherwise."""
    if task.project.suggestions == Project.Suggestions.OFF:
        return ""
    suggested = judge_order(task)
    if suggested is None:
        return ""
    if position_of is None:
        position_of = {item.completion_id: item.position for item in task.items.all()}
    agreed = pairwise_agreement(suggested, ranking.order)
    pairs = f"you agree on {agreed.agreed} of the {agreed.compared} pairs you both ordered" if agreed.compared else (
        "you share no pair that both of you ordered"
    )  # fmt: skip
    return f"The AI judge ranked it {order_in_letters(suggested, position_of)}: {pairs}."


def _answers(letters: list[str]) -> str:
    """["D"] -> "answer D"; ["B", "C", "D"] -> "answers B, C and D"."""
    if len(letters) == 1:
        return f"answer {letters[0]}"
    return f"answers {', '.join(letters[:-1])} and {letters[-1]}"


def refusal_message(error: ValidationError, shown: list[ShownCompletion]) -> str:
    """A refused ranking as the page says it, naming answers by the letters labelers see.

    The services' messages also give completion ids, which the API and the admin use; here an id
    only reaches the page from a form that was tampered with, so it is never repeated back.
    """
    code, params = getattr(error, "code", None), getattr(error, "params", None) or {}
    letter_of = {s.completion.pk: s.letter for s in shown}
    if code == "missing":
        letters = params["letters"]
        verb = "has" if len(letters) == 1 else "have"
        return f"Rank every answer before submitting: {_answers(letters)} {verb} no rank yet."
    if code in ("empty", "empty_rank"):
        return "Rank every answer before submitting: none has a rank yet."
    if code == "repeated" and params.get("id") in letter_of:
        return f"Answer {letter_of[params['id']]} is placed twice: give each answer one rank."
    if code == "likert" and params.get("id") in letter_of:
        return f"The overall quality of answer {letter_of[params['id']]} must be from 1 to 7."
    if code in ("foreign", "repeated", "likert", "not_an_id"):
        return "The form named an answer that is not part of this task: reload the page and rank again."
    return " ".join(error.messages)
