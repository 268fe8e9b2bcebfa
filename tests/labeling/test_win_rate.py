"""The Bradley–Terry win rate and its Wilson interval on hand-computed values (no database)."""

import math

import pytest

from labeling.statistics import wilson_interval, win_rate


def test_the_estimate_is_the_win_share_with_ties_half_and_the_interval_matches_a_hand_calculation():
    # b wins 7, ties 2, loses 1 of n = 10 comparisons: p = (7 + 2/2) / 10 = 0.8.
    # Wilson, z = 1.96, z² = 3.8416:
    #   denominator = 1 + 3.8416/10 = 1.38416
    #   centre = (0.8 + 3.8416/20) / 1.38416 = 0.99208 / 1.38416 = 0.716738
    #   half = 1.96 · sqrt(0.8·0.2/10 + 3.8416/400) / 1.38416 = 1.96 · sqrt(0.025604) / 1.38416
    #        = 1.96 · 0.160012 / 1.38416 = 0.226581
    #   interval = [0.490157, 0.943319]
    result = win_rate(7, 2, 1)
    assert result.n == 10 and result.estimate == pytest.approx(0.8)
    assert result.low == pytest.approx(0.490157, abs=1e-6)
    assert result.high == pytest.approx(0.943319, abs=1e-6)
    # θ_b − θ_a = logit(0.8) = ln 4 = 1.386294
    assert result.strength == pytest.approx(math.log(4))


def test_the_estimate_maximises_the_bradley_terry_likelihood():
    won, lost = 7 + 1, 1 + 1  # the 2 ties split half and half

    def loglik(p: float) -> float:
        return won * math.log(p) + lost * math.log(1 - p)

    best = win_rate(7, 2, 1).estimate
    assert all(loglik(best) >= loglik(p / 100) for p in range(1, 100))


def test_a_clean_sweep_keeps_an_informative_interval():
    # n = 3, p = 1: denominator = 1 + 3.8416/3 = 2.280533; centre = (1 + 3.8416/6) / 2.280533 = 0.719253
    # half = 1.96 · sqrt(3.8416/36) / 2.280533 = 1.96 · 0.326667 / 2.280533 = 0.280759 -> [0.438494, 1]
    result = win_rate(3, 0, 0)
    assert result.estimate == 1.0 and result.strength is None
    assert result.low == pytest.approx(0.438494, abs=1e-6) and result.high == pytest.approx(1.0)


def test_no_comparisons_give_no_estimate_and_bad_counts_are_refused():
    empty = win_rate(0, 0, 0)
    assert (empty.estimate, empty.low, empty.high) == (None, None, None)
    with pytest.raises(ValueError, match="negative"):
        win_rate(-1, 0, 2)
    with pytest.raises(ValueError, match="at least one"):
        wilson_interval(0.5, 0)
