"""Turning rankings into reward-model batches: one forward per completion, every C(K,2) pair."""

from dataclasses import dataclass
from itertools import combinations

import torch
from transformers import PreTrainedTokenizerBase

from training.core.generation import format_prompt


@dataclass(frozen=True)
class RankedPrompt:
    prompt: str
    completions: list[str]
    order: list[list[int]]
    """Tie groups of indices into `completions`, best first: [[2], [0, 3], [1]]."""
    labeler: str = ""


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


@dataclass
class RewardBatch:
    input_ids: torch.Tensor  # (N, T) every completion of every prompt, right-padded
    attention_mask: torch.Tensor  # (N, T)
    winners: torch.Tensor  # (P,) row in input_ids of each pair's winner
    losers: torch.Tensor  # (P,)
    weights: torch.Tensor  # (P,) 1 / C(K,2) of the pair's prompt
    mu: torch.Tensor  # (P,) target probability that the winner wins
    pair_prompt: torch.Tensor  # (P,) index of the pair's prompt in the batch
    n_prompts: int

    def to(self, device: str | torch.device) -> "RewardBatch":
        for name in ("input_ids", "attention_mask", "winners", "losers", "weights", "mu", "pair_prompt"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_length: int) -> list[int]:
    """Chat-formatted prompt + completion + EOS; an over-long one keeps its end (the EOS is read)."""
    prompt_text = format_prompt(tokenizer, prompt)
    ids = tokenizer(prompt_text + completion, add_special_tokens=not tokenizer.chat_template)["input_ids"]
    return [*ids, tokenizer.eos_token_id][-max_length:]


def collate(
    items: list[RankedPrompt], tokenizer: PreTrainedTokenizerBase, max_length: int, tie_mode: str
) -> RewardBatch:
    rows: list[list[int]] = []
    winners, losers, weights, mu, pair_prompt = [], [], [], [], []
    for p, item in enumerate(items):
        offset = len(rows)
        rows += [encode(tokenizer, item.prompt, c, max_length) for c in item.completions]
        total, _ = count_pairs(item.order)
        for w, loser, target in ranked_pairs(item.order, tie_mode):
            winners.append(offset + w)
            losers.append(offset + loser)
            weights.append(1.0 / total)
            mu.append(target)
            pair_prompt.append(p)
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), tokenizer.pad_token_id, dtype=torch.long)  # (N, T)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)  # (N, T)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return RewardBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        winners=torch.tensor(winners, dtype=torch.long),
        losers=torch.tensor(losers, dtype=torch.long),
        weights=torch.tensor(weights),
        mu=torch.tensor(mu),
        pair_prompt=torch.tensor(pair_prompt, dtype=torch.long),
        n_prompts=len(items),
    )
