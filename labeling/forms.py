"""Reads the ranking form a browser posts (with or without JavaScript) into service arguments.

Each completion has a `rank-<completion id>` field holding its rank number, 1 = best; equal
numbers are ties. `likert-<completion id>` holds an optional 1–7 score.
"""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.http import QueryDict


@dataclass
class RankingInput:
    order: list[list[int]]
    likert: dict[str, int] = field(default_factory=dict)
    rationale: str = ""
    flags: list[str] = field(default_factory=list)
    time_spent_ms: int | None = None


def _integer(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number, not {value[:20]!r}.", code="not_an_integer") from None


def _id_field(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix):
        return None
    return _integer(name.removeprefix(prefix), "A completion id")


def parse_ranking_form(data: QueryDict) -> RankingInput:
    """Raises ValidationError for a malformed form; the service checks the order against the task."""
    ranks: dict[int, int] = {}
    likert: dict[str, int] = {}
    for name, values in data.lists():
        if (cid := _id_field(name, "rank-")) is not None:
            values = [v for v in values if v.strip()]
            if len(values) > 1:
                raise ValidationError(f"Completion {cid} is placed twice.", code="repeated")
            if values:
                ranks[cid] = _integer(values[0], "A rank")
        elif (cid := _id_field(name, "likert-")) is not None and values[-1].strip():
            likert[str(cid)] = _integer(values[-1], "A Likert score")
    groups: dict[int, list[int]] = {}
    for cid, rank in ranks.items():
        groups.setdefault(rank, []).append(cid)
    spent = data.get("time_spent_ms", "").strip()
    return RankingInput(
        order=[groups[rank] for rank in sorted(groups)],
        likert=likert,
        rationale=data.get("rationale", ""),
        flags=data.getlist("flags"),
        time_spent_ms=max(0, _integer(spent, "time_spent_ms")) if spent else None,
    )
