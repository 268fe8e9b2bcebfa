"""Uncertainty selection: the ensemble's disagreement per pair, per task, and the K of 2K
candidates it disputes most, on hand-made member scores."""

import itertools
import math

import pytest
import torch

from training.core.selection import control_slots, most_disputed_subset, pair_disagreement, task_uncertainty


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_pair_disagreement_is_the_heads_std_of_the_win_probability():
    members = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, 1.0]])  # (K=3, E=2)
    disagreement = pair_disagreement(members)
    # Pair (0, 1): P(0 beats 1) is σ(0) = 0.5 for head 1 and σ(2) for head 2.
    p = [0.5, sigmoid(2.0)]
    mean = sum(p) / 2
    expected = math.sqrt(sum((x - mean) ** 2 for x in p) / (2 - 1))  # sample std over heads
    assert float(disagreement[0, 1]) == pytest.approx(expected)
    assert float(disagreement[1, 2]) == pytest.approx(0.0, abs=1e-7)  # both heads: σ(-1)
    assert torch.allclose(disagreement, disagreement.T) and torch.all(disagreement.diagonal() == 0)
    upper = [float(disagreement[i, j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert task_uncertainty(members) == pytest.approx(sum(upper) / 3)


def test_a_single_head_cannot_disagree_with_itself():
    with pytest.raises(ValueError, match="at least 2 heads"):
        pair_disagreement(torch.zeros(4, 1))


def test_the_chosen_k_of_2k_are_the_subset_with_the_most_disputed_pairs():
    torch.manual_seed(0)
    members = torch.randn(8, 5)  # 2K = 8 candidates, 5 heads
    chosen = most_disputed_subset(members, 4)
    disagreement = pair_disagreement(members)

    def score(subset):
        return sum(float(disagreement[i, j]) for n, i in enumerate(subset) for j in subset[n + 1 :])

    best = max(itertools.combinations(range(8), 4), key=score)
    assert chosen == list(best) and len(set(chosen)) == 4
    assert task_uncertainty(members[chosen]) >= task_uncertainty(members[:4])


def test_candidates_the_heads_agree_on_are_left_out():
    agreed = torch.tensor([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [-5.0, -5.0, -5.0]])  # every head alike
    disputed = torch.tensor([[2.0, -2.0, 0.0], [-2.0, 2.0, 0.0]])
    members = torch.cat([agreed, disputed])  # (5, 3)
    assert most_disputed_subset(members, 2) == [3, 4]
    with pytest.raises(ValueError, match="Cannot choose 6 of 5"):
        most_disputed_subset(members, 6)


def test_the_control_share_is_every_fifth_task_at_0_2_and_exactly_its_share():
    assert control_slots(10, 0.2) == [False] * 4 + [True] + [False] * 4 + [True]
    assert control_slots(3, 0.5) == [False, True, False]
    assert sum(control_slots(50, 0.2)) == 10 and sum(control_slots(7, 1 / 3)) == 2
    assert control_slots(4, 0.0) == [False] * 4 and control_slots(4, 1.0) == [True] * 4
    with pytest.raises(ValueError, match="between 0 and 1"):
        control_slots(4, 1.5)
