"""Win rate of one policy version over another from blind human comparisons: pure, no Django.

Bradley–Terry puts P(b beats a) = σ(θ_b − θ_a). Each comparison of a's and b's answers ends in
a win for b, a tie, or a loss; a tie counts as half a win for each. With w = wins + ties/2 and
l = losses + ties/2, the log-likelihood w·log p + l·log(1 − p) of p = σ(θ_b − θ_a) peaks at
p̂ = w / n: for two versions the maximum-likelihood estimate is the win share, and
θ_b − θ_a = logit(p̂).

The 95% interval is Wilson's score interval for p̂ over n comparisons:

    centre = (p̂ + z²/2n) / (1 + z²/n),   half = z·sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n)

It stays inside [0, 1] and is still informative at p̂ = 0 or 1, where a Wald interval collapses
to a point. z = 1.96. Ties enter it as half a success each.
"""

import math
from dataclasses import dataclass

Z95 = 1.96


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
