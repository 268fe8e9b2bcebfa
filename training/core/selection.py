"""Active selection: which comparisons teach the reward model most. An ensemble of heads, each
trained on its own bootstrap of the rankings, disagrees where the data is thin; the pairs it
disputes most are the ones whose labels move it most (query by committee)."""

import itertools

import torch
from transformers import PreTrainedTokenizerBase

from labeling.conversations import Chat
from training.core.config import RewardModelConfig
from training.core.rankings import RankedPrompt
from training.core.reward_model import RewardModel
from training.core.reward_training import member_scores


def pair_disagreement(members: torch.Tensor) -> torch.Tensor:
    """The heads' standard deviation of P(i beats j) = σ(s_i − s_j), for every pair of one
    prompt's completions; symmetric, 0 on the diagonal. (K, E) -> (K, K)"""
    if members.shape[-1] < 2:
        raise ValueError("Disagreement needs an ensemble: a reward model with at least 2 heads.")
    p_win = torch.sigmoid(members[:, None, :] - members[None, :, :])  # (K, K, E)
    return p_win.std(dim=-1)  # (K, K)


def task_uncertainty(members: torch.Tensor) -> float:
    """A task's score for uncertainty selection: pair disagreement averaged over its C(K,2) pairs. (K, E)"""
    disagreement = pair_disagreement(members)  # (K, K)
    upper = torch.triu(torch.ones_like(disagreement, dtype=torch.bool), diagonal=1)  # (K, K)
    return float(disagreement[upper].mean())


def most_disputed_subset(members: torch.Tensor, k: int) -> list[int]:
    """The k of M candidates (ascending indices) whose C(k,2) pairs the ensemble disputes most on
    average; exact, over every subset (C(8,4) = 70 for K = 4 of 2K). (M, E) -> k indices"""
    candidates = members.shape[0]
    if not 2 <= k <= candidates:
        raise ValueError(f"Cannot choose {k} of {candidates} candidates.")
    disagreement = pair_disagreement(members)  # (M, M)
    subsets = torch.tensor(list(itertools.combinations(range(candidates), k)))  # (S, k)
    within = disagreement[subsets[:, :, None], subsets[:, None, :]]  # (S, k, k), diagonal 0
    best = int(within.sum(dim=(1, 2)).argmax())  # the first subset of the highest sum on ties
    return subsets[best].tolist()


def control_slots(n: int, share: float) -> list[bool]:
    """Which of a run's n new tasks are its control share under uncertainty selection: K candidates
    as sampled, not as disputed. Spread evenly: slot j is one when ⌊(j+1)·share⌋ > ⌊j·share⌋, so
    every 1/share-th task (the 5th, 10th, ... at 0.2) and exactly ⌊n·share⌋ of them."""
    if not 0 <= share <= 1:
        raise ValueError(f"The control share must lie between 0 and 1, not {share}.")
    return [int((j + 1) * share + 1e-9) > int(j * share + 1e-9) for j in range(n)]


def group_members(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    groups: list[tuple[Chat, list[str]]],
    config: RewardModelConfig,
) -> list[torch.Tensor]:
    """Every head's raw score of each prompt's completions: one (K_i, E) tensor per group."""
    items = [RankedPrompt(prompt, completions, [list(range(len(completions)))]) for prompt, completions in groups]
    members = member_scores(model, tokenizer, items, config) if items else torch.zeros(0, 1)  # (N, E)
    return list(members.split([len(completions) for _, completions in groups]))
