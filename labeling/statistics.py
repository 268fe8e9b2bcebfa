"""The statistics of human judgements: pure functions, no Django, no torch. Labeling and training
both read them (labeling is the lower layer: training imports it, never the other way round).

- Orders and their pairs: the pairs a ranking orders, for training and exports.
- Agreement: how far two rankings, or a ranking and a gold order, agree.
- Win rates: one policy version over another from blind comparisons.
- Shares of pairs: every accuracy, agreement and win rate with its count and 95% interval.

## Orders and agreement

An order is a list of tie groups of item ids, best first: [[12], [14, 11], [13]] puts 12 first,
14 and 11 tied second, 13 last. Two rankings of one task order the same items.

The choices, each tested on hand-computed values (tests/labeling/test_agreement.py, test_shares.py, test_win_rate.py):

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

## Win rates

Bradley–Terry puts P(b beats a) = σ(θ_b − θ_a). Each comparison of a's and b's answers ends in
a win for b, a tie, or a loss; a tie counts as half a win for each. With w = wins + ties/2 and
l = losses + ties/2, the log-likelihood w·log p + l·log(1 − p) of p = σ(θ_b − θ_a) peaks at
p̂ = w / n: for two versions the maximum-likelihood estimate is the win share, and
θ_b − θ_a = logit(p̂).

The 95% interval is Wilson's score interval for p̂ over n comparisons:

    centre = (p̂ + z²/2n) / (1 + z²/n),   half = z·sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n)

It stays inside [0, 1] and is still informative at p̂ = 0 or 1, where a Wald interval collapses
to a point. z = 1.96. Ties enter it as half a success each.

## Shares of pairs

The dashboard, the API and project_report give accuracies, agreements and win rates this way.
A share measured on few pairs says little: 8 right of 10 has a 95% Wilson interval of 49% to 94%.
So every such figure travels with the number of pairs behind it and its interval, and below
`MIN_PAIRS_TO_TELL` pairs its share is withheld (None) while the count and interval are still given:

    {"share": 0.62, "pairs": 40, "low": 0.465, "high": 0.754}   # enough pairs
    {"share": None, "pairs": 12, "low": 0.468, "high": 0.911}   # 9 of 12: too few pairs to tell
    {"share": None, "pairs": 0, "low": None, "high": None}      # nothing measured
    {"share": 0.7, "pairs": None, "low": None, "high": None}    # count not recorded (older rows)
"""

import math
import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

Order = Sequence[Sequence[int]]
Z95 = 1.96


# --- orders and their pairs ----------------------------------------------------------------------


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


# --- agreement -----------------------------------------------------------------------------------


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


def earned_weight(
    counts: PairCounts,
    people: Mapping[str, PairCounts],
    cap: float,
    prior_pairs: float = RELIABILITY_PRIOR_PAIRS,
    min_pairs: int = 10,
) -> float:
    """An AI judge's weight in the reward model's loss, from the pairs it ordered as people (or the gold
    order) did: its figure 2·share − 1 relative to the best person's, as `reliability_weights` computes
    a person's, but shrunk toward 0 rather than 1 while its pairs are few, and never above `cap`. A
    person is trusted until shown careless; a judge earns its weight by agreeing with people."""
    if not counts.compared:
        return 0.0
    raw = max(0.0, 2 * counts.share - 1)
    best = max((max(0.0, 2 * c.share - 1) for c in people.values() if c.compared >= min_pairs), default=0.0)
    relative = min(1.0, raw / best) if best > 0 else raw
    return min(cap, counts.compared * relative / (counts.compared + prior_pairs))


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
    denominator = math.sqrt((n0 - tied_a) * (n0 - tied_b))
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


# --- win rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinRate:
    wins: int
    ties: int
    losses: int
    estimate: float | None
    """P(b beats a): the Bradley–Terry MLE, the win share with ties counted half; None without data."""
    low: float | None
    high: float | None
    strength: float | None
    """θ_b − θ_a = logit(estimate); None at 0 or 1 (the MLE is at infinity)."""

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses


def wilson_interval(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion p observed over n trials."""
    if n <= 0:
        raise ValueError("A proportion needs at least one trial.")
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate(wins: int, ties: int, losses: int, z: float = Z95) -> WinRate:
    """b's win rate over a with its interval, from b's wins, the ties, and b's losses."""
    if min(wins, ties, losses) < 0:
        raise ValueError("Wins, ties and losses cannot be negative.")
    n = wins + ties + losses
    if n == 0:
        return WinRate(wins, ties, losses, None, None, None, None)
    p = (wins + ties / 2) / n
    low, high = wilson_interval(p, n, z)
    strength = math.log(p / (1 - p)) if 0 < p < 1 else None
    return WinRate(wins, ties, losses, p, low, high, strength)


# --- shares of pairs -----------------------------------------------------------------------------

MIN_PAIRS_TO_TELL = 20
"""Fewer pairs than this and a share is not given (nor a labeler flagged on it): at 10 of 20 the 95%
interval still runs from 30% to 70%."""


def share_of_pairs(share: float | None, pairs: int | None, min_pairs: int = MIN_PAIRS_TO_TELL) -> dict:
    """A share with its count and 95% Wilson interval, the share withheld under `min_pairs` pairs.

    `pairs` None means the count was not recorded: the share is given as it is, with no interval.
    """
    if pairs is None and share is not None:
        return {"share": share, "pairs": None, "low": None, "high": None}
    if not pairs or share is None:
        return {"share": None, "pairs": pairs or 0, "low": None, "high": None}
    low, high = wilson_interval(share, pairs)
    return {"share": share if pairs >= min_pairs else None, "pairs": pairs, "low": low, "high": high}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit.removesuffix('s') if n == 1 else unit}"


def share_text(fig: dict | None, unit: str = "pairs") -> str:
    """The share alone: "62%", "too few pairs to tell", or "–" with nothing measured."""
    if not fig or (fig["share"] is None and not fig["pairs"]):
        return "–"
    return f"{fig['share']:.0%}" if fig["share"] is not None else f"too few {unit} to tell"


def evidence_text(fig: dict | None, unit: str = "pairs") -> str:
    """What the share rests on: "95% CI 47–75%, 40 pairs"; under the minimum, "12 pairs"."""
    if not fig or (fig["share"] is None and not fig["pairs"]):
        return ""
    if fig["pairs"] is None:
        return f"number of {unit} not recorded"
    if fig["share"] is None:
        return _count(fig["pairs"], unit)
    low, high = f"{fig['low']:.0%}".removesuffix("%"), f"{fig['high']:.0%}"
    return f"95% CI {low}–{high}, {_count(fig['pairs'], unit)}"


def figure_text(fig: dict | None, unit: str = "pairs") -> str:
    """One line: "62% (95% CI 47–75%, 40 pairs)", "too few pairs to tell (12 pairs)", or "–"."""
    share, evidence = share_text(fig, unit), evidence_text(fig, unit)
    return f"{share} ({evidence})" if evidence else share
