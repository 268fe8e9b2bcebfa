"""Turning rankings into reward-model batches: one forward per completion, every C(K,2) pair."""

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from labeling.conversations import Chat
from labeling.statistics import count_pairs, ranked_pairs
from training.core.generation import format_prompt
from training.core.rankings import RankedPrompt


@dataclass
class RewardBatch:
    """A batch of ranked prompts: each prompt once, its completions after it, and the pair index."""

    prompt_ids: torch.Tensor  # (G, P) one row per prompt, left-padded
    prompt_mask: torch.Tensor  # (G, P)
    completion_ids: torch.Tensor  # (N, C) every completion of every prompt (+ EOS), right-padded
    completion_mask: torch.Tensor  # (N, C)
    group: torch.Tensor  # (N,) the prompt row of each completion
    winners: torch.Tensor  # (P,) completion row of each pair's winner
    losers: torch.Tensor  # (P,)
    weights: torch.Tensor  # (P,) 1 / C(K,2) of the pair's prompt
    mu: torch.Tensor  # (P,) target probability that the winner wins
    pair_prompt: torch.Tensor  # (P,) index of the pair's prompt in the batch
    n_prompts: int

    def to(self, device: str | torch.device) -> "RewardBatch":
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self


def encode_parts(
    tokenizer: PreTrainedTokenizerBase, prompt: Chat, completion: str, max_length: int
) -> tuple[list[int], list[int]]:
    """(chat-formatted prompt ids, completion ids + EOS); a completion longer than max_length - 1 is cut."""
    prompt_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=not tokenizer.chat_template)[
        "input_ids"
    ]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"][: max_length - 1]
    return prompt_ids, [*completion_ids, tokenizer.eos_token_id]


def pad_rows(rows: list[list[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows padded to the longest, on the left or the right, and their attention mask.
    R rows -> (R, L) ids, (R, L) mask"""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad, dtype=torch.long)  # (R, L)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)  # (R, L)
    for i, row in enumerate(rows):
        span = slice(longest - len(row), longest) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


@dataclass
class PairIndex:
    """Every ordered pair of a list of ranked prompts, as indices into their completions laid end to end."""

    winners: torch.Tensor  # (P,) completion row of each pair's winner
    losers: torch.Tensor  # (P,)
    weights: torch.Tensor  # (P,) the ranking's weight / C(K,2): each prompt counts once
    mu: torch.Tensor  # (P,) target probability that the winner wins
    pair_prompt: torch.Tensor  # (P,) index of the pair's prompt in the list


def pair_index(items: list[RankedPrompt], tie_mode: str) -> PairIndex:
    winners, losers, weights, mu, pair_prompt = [], [], [], [], []
    offset = 0
    for p, item in enumerate(items):
        total, _ = count_pairs(item.order)
        for w, loser, target in ranked_pairs(item.order, tie_mode):
            winners.append(offset + w)
            losers.append(offset + loser)
            weights.append(item.weight / total)
            mu.append(target)
            pair_prompt.append(p)
        offset += len(item.completions)
    return PairIndex(
        winners=torch.tensor(winners, dtype=torch.long),
        losers=torch.tensor(losers, dtype=torch.long),
        weights=torch.tensor(weights, dtype=torch.float32),
        mu=torch.tensor(mu, dtype=torch.float32),
        pair_prompt=torch.tensor(pair_prompt, dtype=torch.long),
    )


def completion_rows(data: list[RankedPrompt]) -> list[range]:
    """Where each ranked prompt's completions are in its completions laid end to end."""
    rows, start = [], 0
    for item in data:
        rows.append(range(start, start + len(item.completions)))
        start += len(item.completions)
    return rows


def collate(
    items: list[RankedPrompt], tokenizer: PreTrainedTokenizerBase, max_length: int, tie_mode: str
) -> RewardBatch:
    """Each prompt is encoded once and shared by its K completions (the model reuses its keys and
    values), so a ranked prompt costs one prompt plus K completions of compute."""
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    group = []
    for p, item in enumerate(items):
        parts = [encode_parts(tokenizer, item.prompt, c, max_length) for c in item.completions]
        longest = max(len(c) for _, c in parts)
        prompts.append(parts[0][0][-max(1, max_length - longest) :])  # a long group cuts its prompt's start
        completions += [c for _, c in parts]
        group += [p] * len(parts)
    prompt_ids, prompt_mask = pad_rows(prompts, tokenizer.pad_token_id, left=True)
    completion_ids, completion_mask = pad_rows(completions, tokenizer.pad_token_id, left=False)
    pairs = pair_index(items, tie_mode)
    return RewardBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        group=torch.tensor(group, dtype=torch.long),
        winners=pairs.winners,
        losers=pairs.losers,
        weights=pairs.weights,
        mu=pairs.mu,
        pair_prompt=pairs.pair_prompt,
        n_prompts=len(items),
    )
