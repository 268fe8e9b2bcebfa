"""Streaming a project's preferences out as JSONL, in constant memory, for other trainers.

Rankings are read through a server-side cursor (`QuerySet.iterator`) CHUNK_SIZE at a time, each
chunk's prompts, labelers and completions fetched with it (a fixed number of queries per chunk,
never one per row). A ranking is the source of truth; pairs are derived from it here:

- `pair_rows`: {"prompt", "chosen", "rejected"}, the format TRL's RewardTrainer and DPOTrainer read,
  one row per ordered pair of a ranking. Pairs within a tie group are dropped, or with ties="half"
  written once in each direction (a 0.5 target under Bradley–Terry).
- `ranking_rows`: one row per ranking with everything it records and where its completions came from.

Rankings staff excluded from training are left out unless `include_excluded`.
"""

import json
from collections.abc import Iterable, Iterator

from django.db.models import Prefetch, QuerySet

from labeling.models import Project, Ranking, TaskCompletion
from training.core.rankings import ranked_pairs

CHUNK_SIZE = 500
BLOCK_CHARS = 1 << 16
FORMATS = ("pairs", "rankings")
TIE_MODES = ("drop", "half")


def _rankings(project: Project, include_excluded: bool) -> QuerySet[Ranking]:
    items = TaskCompletion.objects.select_related("completion__policy_version").order_by("position")
    rankings = (
        Ranking.objects.filter(task__project=project)
        .select_related("task__prompt", "labeler")
        .prefetch_related(Prefetch("task__items", queryset=items))
        .order_by("id")
    )
    return rankings if include_excluded else rankings.filter(excluded=False)


def pair_rows(project: Project, ties: str = "drop", include_excluded: bool = False) -> Iterator[dict]:
    """{"prompt", "chosen", "rejected"} for each ordered pair of each ranking, rankings in id order."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {', '.join(TIE_MODES)}, not {ties!r}")
    for ranking in _rankings(project, include_excluded).iterator(chunk_size=CHUNK_SIZE):
        prompt = ranking.task.prompt.text
        texts = {item.completion_id: item.completion.text for item in ranking.task.items.all()}
        for winner, loser, mu in ranked_pairs(ranking.order, ties):
            yield {"prompt": prompt, "chosen": texts[winner], "rejected": texts[loser]}
            if mu == 0.5:
                yield {"prompt": prompt, "chosen": texts[loser], "rejected": texts[winner]}


def ranking_row(ranking: Ranking) -> dict:
    """Everything a ranking records, with its prompt and completions: the provenance of a preference."""
    task = ranking.task
    return {
        "ranking_id": ranking.pk,
        "task_id": task.pk,
        "task_kind": task.kind,
        "prompt_id": task.prompt_id,
        "prompt": task.prompt.text,
        "completions": [
            {
                "id": item.completion_id,
                "label": "ABCDEFGHI"[item.position],
                "text": item.completion.text,
                "finish_reason": item.completion.finish_reason,
                "token_count": item.completion.token_count,
                "policy_version": item.completion.policy_version.version,
            }
            for item in task.items.all()
        ],
        "order": ranking.order,
        "likert": ranking.likert,
        "rationale": ranking.rationale,
        "flags": ranking.flags,
        "time_spent_ms": ranking.time_spent_ms,
        "labeler": ranking.labeler.get_username(),
        "created_at": ranking.created_at.isoformat(),
        "excluded": ranking.excluded,
    }


def ranking_rows(project: Project, include_excluded: bool = False) -> Iterator[dict]:
    """One row per ranking (see `ranking_row`), in id order."""
    for ranking in _rankings(project, include_excluded).iterator(chunk_size=CHUNK_SIZE):
        yield ranking_row(ranking)


def export_rows(project: Project, format: str, ties: str = "drop", include_excluded: bool = False) -> Iterator[dict]:
    """The rows of an export in `format` ("pairs" or "rankings"); `ties` applies to pairs."""
    if format == "pairs":
        return pair_rows(project, ties, include_excluded)
    if format == "rankings":
        return ranking_rows(project, include_excluded)
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
