"""Shares of pairs with their count and Wilson interval, withheld under the minimum (no database)."""

import pytest

from labeling.statistics import MIN_PAIRS_TO_TELL, evidence_text, figure_text, share_of_pairs, share_text


def test_enough_pairs_give_the_share_and_a_hand_computed_interval():
    # 16 of 20: p = 0.8, z = 1.96, z² = 3.8416
    #   denominator = 1 + 3.8416/20 = 1.19208
    #   centre = (0.8 + 3.8416/40) / 1.19208 = 0.89604 / 1.19208 = 0.751661
    #   half = 1.96 · sqrt(0.8·0.2/20 + 3.8416/1600) / 1.19208 = 1.96 · sqrt(0.010401) / 1.19208 = 0.167683
    #   interval = [0.583978, 0.919344]
    assert MIN_PAIRS_TO_TELL == 20
    fig = share_of_pairs(0.8, 20)
    assert (fig["share"], fig["pairs"]) == (0.8, 20)
    assert fig["low"] == pytest.approx(0.583978, abs=1e-6) and fig["high"] == pytest.approx(0.919344, abs=1e-6)
    assert figure_text(fig) == "80% (95% CI 58–92%, 20 pairs)"


def test_under_the_minimum_the_share_is_withheld_but_the_count_and_interval_are_given():
    # 8 of 10: the interval of tests/training/test_win_rate.py, [0.490157, 0.943319]
    fig = share_of_pairs(0.8, 10)
    assert (fig["share"], fig["pairs"]) == (None, 10)
    assert fig["low"] == pytest.approx(0.490157, abs=1e-6) and fig["high"] == pytest.approx(0.943319, abs=1e-6)
    assert share_text(fig) == "too few pairs to tell" and evidence_text(fig) == "10 pairs"
    assert figure_text(fig) == "too few pairs to tell (10 pairs)"
    assert figure_text(share_of_pairs(1.0, 1), "comparisons") == "too few comparisons to tell (1 comparison)"
    assert share_of_pairs(0.8, 10, min_pairs=10)["share"] == 0.8


def test_nothing_measured_and_a_count_never_recorded_say_so():
    for nothing in (share_of_pairs(None, 0), share_of_pairs(None, None)):
        assert nothing == {"share": None, "pairs": 0, "low": None, "high": None}
        assert figure_text(nothing) == "–"
    unrecorded = share_of_pairs(0.7, None)
    assert unrecorded == {"share": 0.7, "pairs": None, "low": None, "high": None}
    assert figure_text(unrecorded) == "70% (number of pairs not recorded)"
    assert figure_text(None) == "–"
