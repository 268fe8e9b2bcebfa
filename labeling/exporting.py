"""Streaming a project's preferences out as JSONL, in constant memory, for other trainers.

Rankings are read as plain values through a server-side cursor (`QuerySet.iterator`), CHUNK_SIZE
at a time, and each chunk's completions are fetched with one query (two queries per chunk, never
one per row; no model instances, which cost more than the database here). A ranking is the
source of truth; pairs are derived from it here:

- `pair_rows`: {"prompt", "chosen", "rejected"}, the format TRL's RewardTrainer and DPOTrainer read,
  one row per ordered pair of a ranking. Pairs within a tie group are dropped, or with ties="half"
  written once in each direction (a 0.5 target under Bradley–Terry).
- `conversational_rows`: the same pairs in TRL's conversational form: `prompt` a list of messages,
  `chosen` and `rejected` one assistant message each (TRL applies the chat template).
- `ranking_rows`: one row per ranking with everything it records and where its completions came from,
  ties and the whole K-way order included; its prompt also as messages (`prompt_messages`).
- `demonstration_rows`: labelers' ideal answers as SFT data, {"messages": [..., the assistant's answer]}.

Rankings staff excluded from training are left out unless `include_excluded`.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import islice

from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from labeling.conversations import as_chat, as_dicts
from labeling.models import Demonstration, Project, Ranking, TaskCompletion, letter
from labeling.statistics import ranked_pairs

CHUNK_SIZE = 1000
BLOCK_CHARS = 1 << 16
FORMATS = ("pairs", "conversational", "rankings", "demonstrations")
TIE_MODES = ("drop", "half")
COMPLETION_FIELDS = {
    "text": "completion__text",
    "finish_reason": "completion__finish_reason",
    "token_count": "completion__token_count",
    "policy_version": "completion__policy_version__version",
}


def _ranking_chunks(
    project: Project, include_excluded: bool, include_ai: bool = True
) -> Iterator[tuple[list[dict], dict[int, list[dict]]]]:
    """(rankings, task id -> its completions in display order), CHUNK_SIZE rankings at a time in id order.

    Rankings come as plain values from a server-side cursor; each chunk's completions take one more query.
    """
    rankings = Ranking.objects.filter(task__project=project).order_by("id")
    if not include_excluded:
        rankings = rankings.filter(excluded=False)
    if not include_ai:
        rankings = rankings.filter(ai=False)
    rows = rankings.values(
        "id", "task_id", "task__kind", "task__prompt_id", "task__prompt__text", "task__prompt__messages",
        "order", "likert", "rationale",
        "flags", "time_spent_ms", f"labeler__{get_user_model().USERNAME_FIELD}", "created_at", "excluded",
        "ai", "judged_by", "suggestion",
    ).iterator(chunk_size=CHUNK_SIZE)  # fmt: skip
    while chunk := list(islice(rows, CHUNK_SIZE)):
        items = TaskCompletion.objects.filter(task_id__in={row["task_id"] for row in chunk}).order_by("position")
        completions: dict[int, list[dict]] = defaultdict(list)
        for item in items.values("task_id", "position", "completion_id", *COMPLETION_FIELDS.values()):
            shown = {"id": item["completion_id"], "label": letter(item["position"])}
            completions[item["task_id"]].append({**shown, **{name: item[f] for name, f in COMPLETION_FIELDS.items()}})
        yield chunk, completions


def _messages(ranking: dict) -> list[dict[str, str]]:
    return as_dicts(as_chat(ranking["task__prompt__text"], ranking["task__prompt__messages"]))


def pair_rows(
    project: Project,
    ties: str = "drop",
    include_excluded: bool = False,
    conversational: bool = False,
    include_ai: bool = True,
) -> Iterator[dict]:
    """{"prompt", "chosen", "rejected"} for each ordered pair of each ranking, rankings in id order: as
    texts (a conversation's prompt is its last user message), or in TRL's conversational form. TRL's
    columns only: which pairs the AI judge made is in the rankings format, and `include_ai=False`
    leaves them out here."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {', '.join(TIE_MODES)}, not {ties!r}")
    for chunk, completions in _ranking_chunks(project, include_excluded, include_ai):
        for ranking in chunk:
            prompt = _messages(ranking) if conversational else ranking["task__prompt__text"]
            texts = {c["id"]: c["text"] for c in completions[ranking["task_id"]]}
            if conversational:
                texts = {key: [{"role": "assistant", "content": text}] for key, text in texts.items()}
            for winner, loser, mu in ranked_pairs(ranking["order"], ties):
                yield {"prompt": prompt, "chosen": texts[winner], "rejected": texts[loser]}
                if mu == 0.5:
                    yield {"prompt": prompt, "chosen": texts[loser], "rejected": texts[winner]}


def ranking_rows(project: Project, include_excluded: bool = False, include_ai: bool = True) -> Iterator[dict]:
    """One row per ranking, in id order, with everything it records and its prompt and completions
    (id, display label, text, finish reason, token count, policy version): the provenance of a preference.
    An AI judge's ranking says so (`ai`) and which judge and prompt version made it (`judged_by`); a
    person's made from a pre-filled page, what it started from (`suggestion`)."""
    username = f"labeler__{get_user_model().USERNAME_FIELD}"
    for chunk, completions in _ranking_chunks(project, include_excluded, include_ai):
        for ranking in chunk:
            yield {
                "ranking_id": ranking["id"],
                "task_id": ranking["task_id"],
                "task_kind": ranking["task__kind"],
                "prompt_id": ranking["task__prompt_id"],
                "prompt": ranking["task__prompt__text"],
                "prompt_messages": _messages(ranking),
                "completions": completions[ranking["task_id"]],
                "order": ranking["order"],
                "likert": ranking["likert"],
                "rationale": ranking["rationale"],
                "flags": ranking["flags"],
                "time_spent_ms": ranking["time_spent_ms"],
                "labeler": ranking[username],
                "created_at": ranking["created_at"].isoformat(),
                "excluded": ranking["excluded"],
                "ai": ranking["ai"],
                "judged_by": ranking["judged_by"],
                "suggestion": ranking["suggestion"],
            }


def demonstration_rows(project: Project) -> Iterator[dict]:
    """{"messages": the prompt's messages then the ideal answer} per demonstration, in id order."""
    demonstrations = Demonstration.objects.filter(prompt__project=project).order_by("id")
    for text, messages, answer in demonstrations.values_list("prompt__text", "prompt__messages", "text").iterator(
        chunk_size=CHUNK_SIZE
    ):
        yield {"messages": [*as_dicts(as_chat(text, messages)), {"role": "assistant", "content": answer}]}


def export_rows(
    project: Project, format: str, ties: str = "drop", include_excluded: bool = False, include_ai: bool = True
) -> Iterator[dict]:
    """The rows of an export in `format` (one of FORMATS); `ties` applies to pairs, conversational or not;
    `include_ai=False` leaves the AI judge's rankings out."""
    if format in ("pairs", "conversational"):
        return pair_rows(project, ties, include_excluded, format == "conversational", include_ai)
    if format == "rankings":
        return ranking_rows(project, include_excluded, include_ai)
    if format == "demonstrations":
        return demonstration_rows(project)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")


def jsonl_blocks(rows: Iterable[dict]) -> Iterator[str]:
    """JSONL text (UTF-8 characters kept, one row a line) in blocks of about BLOCK_CHARS characters."""
    block: list[str] = []
    size = 0
    for row in rows:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        block.append(line)
        size += len(line)
        if size >= BLOCK_CHARS:
            yield "".join(block)
            block, size = [], 0
    if block:
        yield "".join(block)


def streamed_export(
    project: Project, format: str, ties: str = "drop", include_excluded: bool = False, include_ai: bool = True
) -> StreamingHttpResponse:
    """The export as a streamed JSONL attachment named after the project and the format."""
    rows = export_rows(project, format, ties, include_excluded, include_ai)
    response = StreamingHttpResponse(jsonl_blocks(rows), content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(project.name) or "project"}-{format}.jsonl"'
    return response
