"""How far rankings agree: pure functions, no Django.

An order is a list of tie groups of item ids, best first: [[12], [14, 11], [13]] puts 12 first,
14 and 11 tied second, 13 last. Two rankings of one task order the same items.

The choices, each tested on hand-computed values (tests/labeling/test_agreement.py):

- Pairwise agreement of two rankings counts the pairs of items that BOTH order strictly. A pair
  that either of them ties is left out: a tie says "no preference", which is neither agreement
  nor disagreement. Ties are what Kendall's τ-b accounts for.
- Kendall's τ-b = (concordant − discordant) / sqrt((n0 − n1)(n0 − n2)) over all n0 = C(n, 2)
  pairs, where n1 and n2 are the pairs tied in the first and in the second ranking. It is None
  when either ranking ties everything (the denominator is 0).
- Gold accuracy counts the gold order's strict pairs that the labeler orders the same way. Here a
  pair the labeler ties is a miss, so tying everything does not score well. Pairs the gold order
  ties are not counted.
- Across many rankings, pair counts are pooled (every compared pair weighs the same) and τ-b is
  the mean over pairs of rankings.

And the other way round, a simulated labeler's ranking from scores: Plackett–Luce draws.
"""

import math
import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from math import sqrt

Order = Sequence[Sequence[int]]


def ranks(order: Order) -> dict[int, int]:
    """Item -> index of its tie group (0 = best)."""
    return {item: place for place, group in enumerate(order) for item in group}


def _relation(rank: Mapping[int, int], a: int, b: int) -> int:
    """+1 if a is above b, -1 if below, 0 if tied."""
    return (rank[a] < rank[b]) - (rank[a] > rank[b])


def _common_pairs(a: Order, b: Order) -> tuple[dict[int, int], dict[int, int], list[tuple[int, int]]]:
    rank_a, rank_b = ranks(a), ranks(b)
    items = sorted(rank_a.keys() & rank_b.keys())
    return rank_a, rank_b, list(combinations(items, 2))


@dataclass(frozen=True)
class PairCounts:
    agreed: int = 0
    compared: int = 0

    @property
    def share(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    def __add__(self, other: "PairCounts") -> "PairCounts":
        return PairCounts(self.agreed + other.agreed, self.compared + other.compared)


RELIABILITY_PRIOR_PAIRS = 20
"""How many pairs of evidence it takes before a labeler's weight is half their own figure, half 1."""


def reliability_weights(
    counts: Mapping[str, PairCounts], prior_pairs: float = RELIABILITY_PRIOR_PAIRS, min_pairs: int = 10
) -> dict[str, float]:
    """Each labeler's weight in the reward model's loss, from the pairs they ordered as the others
    (or the gold order) did. Their figure is 2·share − 1 (0 at chance or below) as a share of the
    best figure among labelers with at least `min_pairs`: disagreement every labeler shows (close
    answers, a noisy preference) says nothing about who is careless, so the most reliable labeler
    weighs 1 and one at chance about 0. When nobody beats chance the figure is used as it is. The
    weight is shrunk toward 1 while a labeler's pairs are few: (n·relative + prior) / (n + prior)."""
    raw = {name: max(0.0, 2 * c.share - 1) for name, c in counts.items() if c.compared}
    best = max((raw[name] for name, c in counts.items() if c.compared >= min_pairs), default=0.0)
    weights = {}
    for name, c in counts.items():
        relative = (min(1.0, raw[name] / best) if best > 0 else raw[name]) if c.compared else 1.0
        weights[name] = (c.compared * relative + prior_pairs) / (c.compared + prior_pairs)
    return weights


def pairwise_agreement(a: Order, b: Order) -> PairCounts:
    """Pairs both rankings order strictly, and how many of them they order the same way."""
    rank_a, rank_b, pairs = _common_pairs(a, b)
    relations = [(_relation(rank_a, x, y), _relation(rank_b, x, y)) for x, y in pairs]
    strict = [(ra, rb) for ra, rb in relations if ra and rb]
    return PairCounts(agreed=sum(ra == rb for ra, rb in strict), compared=len(strict))


def kendall_tau_b(a: Order, b: Order) -> float | None:
    """Kendall's τ-b of two rankings of the same items, with its tie correction."""
    rank_a, rank_b, pairs = _common_pairs(a, b)
    concordant = discordant = tied_a = tied_b = 0
    for x, y in pairs:
        ra, rb = _relation(rank_a, x, y), _relation(rank_b, x, y)
        tied_a += ra == 0
        tied_b += rb == 0
        concordant += ra * rb > 0
        discordant += ra * rb < 0
    n0 = len(pairs)
    denominator = sqrt((n0 - tied_a) * (n0 - tied_b))
    return (concordant - discordant) / denominator if denominator else None


def gold_accuracy(gold: Order, labeler: Order) -> PairCounts:
    """The gold order's strict pairs (compared) and those the labeler orders the same way (agreed)."""
    rank_gold, rank_labeler, pairs = _common_pairs(gold, labeler)
    strict = [(x, y) for x, y in pairs if _relation(rank_gold, x, y)]
    same = sum(_relation(rank_gold, x, y) == _relation(rank_labeler, x, y) for x, y in strict)
    return PairCounts(agreed=same, compared=len(strict))


def order_from_scores(scores: Sequence[float]) -> list[list[int]]:
    """Indices best first, equal scores tied: [0.2, 0.9, 0.2] -> [[1], [0, 2]]."""
    by_score: dict[float, list[int]] = {}
    for index, score in enumerate(scores):
        by_score.setdefault(score, []).append(index)
    return [by_score[score] for score in sorted(by_score, reverse=True)]


@dataclass
class Agreement:
    """Pooled pair counts and the mean τ-b over the pairs of rankings added."""

    pairs: PairCounts = field(default_factory=PairCounts)
    tau_total: float = 0.0
    tau_count: int = 0
    ranking_pairs: int = 0

    def add(self, a: Order, b: Order) -> None:
        self.pairs += pairwise_agreement(a, b)
        tau = kendall_tau_b(a, b)
        if tau is not None:
            self.tau_total += tau
            self.tau_count += 1
        self.ranking_pairs += 1

    @property
    def share(self) -> float | None:
        return self.pairs.share

    @property
    def tau_b(self) -> float | None:
        return self.tau_total / self.tau_count if self.tau_count else None


def overlap_agreement(
    tasks: Iterable[Sequence[tuple[Hashable, Order]]],
) -> tuple[Agreement, dict[Hashable, Agreement]]:
    """Agreement over tasks ranked by two or more labelers: overall (every pair of rankings of a
    task once) and per labeler (each labeler against every other labeler of the same tasks).

    `tasks` yields, per task, its (labeler, order) rankings.
    """
    overall = Agreement()
    per_labeler: dict[Hashable, Agreement] = {}
    for rankings in tasks:
        for (labeler_a, order_a), (labeler_b, order_b) in combinations(rankings, 2):
            overall.add(order_a, order_b)
            per_labeler.setdefault(labeler_a, Agreement()).add(order_a, order_b)
            per_labeler.setdefault(labeler_b, Agreement()).add(order_b, order_a)
    return overall, per_labeler


def plackett_luce_order(scores: list[float], temperature: float, rng: random.Random) -> list[int]:
    """Indices best first, drawn one place at a time with P ∝ exp(score / T); T = 0 sorts."""
    remaining = list(range(len(scores)))
    order = []
    while remaining:
        if temperature <= 0:
            pick = max(remaining, key=lambda i: scores[i])
        else:
            top = max(scores[i] for i in remaining)
            weights = [math.exp((scores[i] - top) / temperature) for i in remaining]
            pick = rng.choices(remaining, weights=weights)[0]
        remaining.remove(pick)
        order.append(pick)
    return order
