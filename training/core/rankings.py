"""Rankings as plain values and the pairs they order; no torch, so exports and the web process stay light."""

from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class RankedPrompt:
    prompt: str
    completions: list[str]
    order: list[list[int]]
    """Tie groups of indices into `completions`, best first: [[2], [0, 3], [1]]."""
    labeler: str = ""
    weight: float = 1.0
    """How much the ranking counts in the loss: its labeler's reliability (1 = fully)."""


def ranked_pairs(order: list[list[int]], tie_mode: str) -> list[tuple[int, int, float]]:
    """(winner, loser, mu) for each pair the ranking orders; mu is the target P(winner beats loser).

    Pairs across tie groups have mu = 1; pairs within a group are left out ('drop') or have
    mu = 0.5 ('half').
    """
    if tie_mode not in ("drop", "half"):
        raise ValueError(f"tie_mode must be 'drop' or 'half', not {tie_mode!r}")
    pairs = [
        (w, loser, 1.0) for i, better in enumerate(order) for worse in order[i + 1 :] for w in better for loser in worse
    ]
    if tie_mode == "half":
        pairs += [(a, b, 0.5) for group in order for a, b in combinations(group, 2)]
    return pairs


def count_pairs(order: list[list[int]]) -> tuple[int, int]:
    """(all pairs, tied pairs) of a ranking: C(K,2) and those inside tie groups."""
    k = sum(len(group) for group in order)
    tied = sum(len(group) * (len(group) - 1) // 2 for group in order)
    return k * (k - 1) // 2, tied
