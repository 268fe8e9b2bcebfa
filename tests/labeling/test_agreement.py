"""The agreement maths on hand-computed values (no database)."""

import math

import pytest

from labeling.statistics import (
    PairCounts,
    gold_accuracy,
    kendall_tau_b,
    order_from_scores,
    overlap_agreement,
    pairwise_agreement,
    reliability_weights,
)

STRICT = [[1], [2], [3], [4]]  # 1 > 2 > 3 > 4


def test_identical_rankings_agree_fully():
    assert pairwise_agreement(STRICT, STRICT).share == 1.0
    assert kendall_tau_b(STRICT, STRICT) == 1.0


def test_a_reversed_ranking_disagrees_on_every_pair():
    reversed_ = [[4], [3], [2], [1]]
    assert pairwise_agreement(STRICT, reversed_).share == 0.0
    assert kendall_tau_b(STRICT, reversed_) == -1.0


def test_a_pair_tied_by_one_labeler_is_left_out_of_agreement_and_corrected_for_in_tau_b():
    other = [[2], [1], [3, 4]]  # 2 > 1 > 3 = 4
    # The 6 pairs:  (1,2): 1>2 vs 2>1 discordant   (1,3) concordant   (1,4) concordant
    #               (2,3) concordant                (2,4) concordant   (3,4): 3>4 vs tie
    # Pairwise agreement leaves (3,4) out: 4 agreed of 5 compared = 0.8.
    counts = pairwise_agreement(STRICT, other)
    assert (counts.agreed, counts.compared, counts.share) == (4, 5, 0.8)
    # τ-b: n0 = 6, n1 = 0 pairs tied in STRICT, n2 = 1 tied in other; nc = 4, nd = 1
    #      (4 - 1) / sqrt((6 - 0)(6 - 1)) = 3 / sqrt(30) = 0.547723
    assert kendall_tau_b(STRICT, other) == pytest.approx(3 / math.sqrt(30))
    assert kendall_tau_b(STRICT, other) == pytest.approx(0.547723, abs=1e-6)


def test_ties_on_both_sides_are_left_out_and_corrected_for():
    a = [[1, 2], [3], [4]]  # 1 = 2 > 3 > 4
    b = [[1], [2, 3], [4]]  # 1 > 2 = 3 > 4
    # (1,2) tied in a: out.  (2,3) tied in b: out.  (1,3) (1,4) (2,4) (3,4) concordant: 4 of 4.
    assert pairwise_agreement(a, b).share == 1.0
    # τ-b: nc = 4, nd = 0, n0 = 6, n1 = 1, n2 = 1: 4 / sqrt(5 · 5) = 0.8
    assert kendall_tau_b(a, b) == pytest.approx(0.8)


def test_tau_b_is_undefined_when_a_ranking_ties_everything():
    all_tied = [[1, 2, 3, 4]]
    assert kendall_tau_b(STRICT, all_tied) is None
    assert pairwise_agreement(STRICT, all_tied).compared == 0
    assert pairwise_agreement(STRICT, all_tied).share is None


def test_gold_accuracy_counts_the_gold_orders_strict_pairs_and_a_tie_is_a_miss():
    gold = [[1], [2, 3], [4]]  # strict pairs: (1,2) (1,3) (1,4) (2,4) (3,4) = 5; (2,3) is tied: not counted
    same_direction = [[1], [3], [2], [4]]  # orders (2,3), which gold ties, and all 5 strict pairs right
    assert gold_accuracy(gold, same_direction).share == 1.0
    labeler = [[2], [1], [3, 4]]
    # (1,2): 2 > 1, wrong.  (1,3) right.  (1,4) right.  (2,4) right.  (3,4): tied, a miss.  3 of 5.
    counts = gold_accuracy(gold, labeler)
    assert (counts.agreed, counts.compared, counts.share) == (3, 5, 0.6)
    assert gold_accuracy(gold, [[1, 2, 3, 4]]).share == 0.0


def test_scores_become_an_order_with_equal_scores_tied():
    assert order_from_scores([0.2, 0.9, 0.2, -1.0]) == [[1], [0, 2], [3]]


def test_each_labeler_is_compared_with_the_others_and_a_reverser_stands_out():
    forward, backward = [[1], [2], [3]], [[3], [2], [1]]
    tasks = [
        [("ann", forward), ("bob", forward), ("rev", backward)],
        [("ann", forward), ("rev", backward)],
    ]
    overall, per = overlap_agreement(tasks)
    # Ranking pairs: task 1 ann-bob (3 of 3), ann-rev (0 of 3), bob-rev (0 of 3); task 2 ann-rev (0 of 3).
    assert (overall.pairs.agreed, overall.pairs.compared, overall.ranking_pairs) == (3, 12, 4)
    assert overall.tau_b == pytest.approx((1 - 1 - 1 - 1) / 4)
    # ann: with bob 3/3, with rev 0/3 twice -> 3 of 9.  rev: 0 of 9.  bob: 3 of 6.
    assert per["ann"].share == pytest.approx(3 / 9)
    assert per["bob"].share == pytest.approx(0.5)
    assert per["rev"].share == 0.0 and per["rev"].tau_b == -1.0


def test_a_labelers_weight_is_their_agreement_above_chance_relative_to_the_best_shrunk_toward_one():
    counts = {
        "best": PairCounts(agreed=80, compared=100),  # 2·0.8 − 1 = 0.6: the reference
        "half": PairCounts(agreed=65, compared=100),  # 0.3: half the best's figure
        "chance": PairCounts(agreed=500, compared=1000),
        "new": PairCounts(),  # no evidence: full weight
        "few": PairCounts(agreed=9, compared=9),  # above the best, but under 10 pairs: not the reference
    }
    weights = reliability_weights(counts, prior_pairs=20)
    assert weights["best"] == pytest.approx(1.0)
    assert weights["half"] == pytest.approx((100 * 0.5 + 20) / 120)
    assert weights["chance"] < 0.02  # at chance, with plenty of evidence: almost nothing
    assert weights["new"] == 1.0 and weights["few"] == pytest.approx(1.0)
    alone = reliability_weights({"only": PairCounts(agreed=40, compared=100)}, prior_pairs=20)
    assert alone["only"] == pytest.approx(20 / 120)  # nobody beats chance: the figure as it is
