"""A Bradley–Terry reward model: the policy's backbone plus a scalar head read at the last real
token (the EOS appended to every completion)."""

import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from training.core.config import RewardModelConfig
from training.core.data import RankedPrompt, RewardBatch, collate, count_pairs, encode, pad_rows
from training.core.loading import prepare_tokenizer, resolve
from training.core.losses import bradley_terry_loss
from training.core.prefix import shared_prefix_inputs

Log = Callable[[dict], None]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token, for left or right padding. (B, T) -> (B,)"""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return (attention_mask * positions).argmax(dim=1)


class RewardModel(nn.Module):
    def __init__(self, backbone: PreTrainedModel, head_init_std: float | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=head_init_std or 1 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.head.bias)
        self.register_buffer("offset", torch.zeros(()))  # normalisation: added to every score

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw scores, before normalisation; the rows' common start is forwarded once. (B, T), (B, T) -> (B,)"""
        keep_last = input_ids.shape[1] - int(attention_mask.sum(dim=1).min()) + 1  # every row's last real token
        inputs = shared_prefix_inputs(self.backbone, input_ids, attention_mask, keep_last)
        hidden = self.backbone(**inputs).last_hidden_state  # (B, T - S, H)
        last = last_token_index(inputs["attention_mask"][:, -hidden.shape[1] :])  # (B,)
        picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        return self.head(picked.to(self.head.weight.dtype)).squeeze(-1)  # (B,)

    def forward_batch(self, batch: RewardBatch) -> torch.Tensor:
        """Raw scores of a collated batch: each prompt is forwarded once and its keys and values
        are shared by its completions. -> (N,)"""
        prompt_positions = (batch.prompt_mask.cumsum(dim=1) - 1).clamp(min=0)  # (G, P)
        cache = self.backbone(
            input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=prompt_positions, use_cache=True
        ).past_key_values
        cache.batch_select_indices(batch.group)  # (G, ...) -> (N, ...): one copy per completion
        prompt_lengths = batch.prompt_mask.sum(dim=1)[batch.group]  # (N,)
        steps = torch.arange(batch.completion_ids.shape[1], device=prompt_lengths.device)  # (C,)
        hidden = self.backbone(
            input_ids=batch.completion_ids,
            attention_mask=torch.cat([batch.prompt_mask[batch.group], batch.completion_mask], dim=1),  # (N, P + C)
            position_ids=prompt_lengths[:, None] + steps,  # (N, C)
            past_key_values=cache,
        ).last_hidden_state  # (N, C, H)
        last = last_token_index(batch.completion_mask)  # (N,)
        picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (N, H)
        return self.head(picked.to(self.head.weight.dtype)).squeeze(-1)  # (N,)

    def token_values(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: int, share_prefix: bool = False
    ) -> torch.Tensor:
        """The head read at the `last` positions before each of the final `last` tokens: the value
        of the state in which each of them was chosen (a critic's use); `share_prefix` forwards the
        rows' common start once. (B, T), (B, T) -> (B, last)"""
        inputs = shared_prefix_inputs(self.backbone, input_ids, attention_mask, last + 1 if share_prefix else None)
        hidden = self.backbone(**inputs).last_hidden_state  # (B, T - S, H)
        before = hidden[:, -(last + 1) : -1]  # (B, last, H)
        return self.head(before.to(self.head.weight.dtype)).squeeze(-1)  # (B, last)

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised scores: reference completions average 0. (B, T) -> (B,)"""
        return self.forward(input_ids, attention_mask) + self.offset


def new_reward_model(
    policy_reference: str, store: Path, config: RewardModelConfig
) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    """A fresh head on the policy's trunk (its LM head is not loaded)."""
    source = resolve(policy_reference, store)
    torch.manual_seed(config.seed)
    backbone = AutoModel.from_pretrained(source, dtype=DTYPES[config.dtype])
    model = RewardModel(backbone, config.head_init_std)
    model.head.to(DTYPES[config.dtype])
    return model, prepare_tokenizer(AutoTokenizer.from_pretrained(source))


def save_reward_model(model: RewardModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Backbone (safetensors + config), head, normalisation offset and tokenizer into `folder`."""
    model.backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, folder / "reward_head.safetensors")
    (folder / "reward.json").write_text(json.dumps({"offset": float(model.offset)}))


def load_reward_model(folder: Path, dtype: str = "float32") -> tuple[RewardModel, PreTrainedTokenizerBase]:
    backbone = AutoModel.from_pretrained(folder, dtype=DTYPES[dtype])
    model = RewardModel(backbone)
    model.head.load_state_dict(load_file(folder / "reward_head.safetensors"))
    model.head.to(DTYPES[dtype])
    model.offset.fill_(json.loads((folder / "reward.json").read_text())["offset"])
    return model, prepare_tokenizer(AutoTokenizer.from_pretrained(folder))


def _lr_at(step: int, total: int, config: RewardModelConfig) -> float:
    warmup = max(1, round(total * config.warmup_ratio))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.final_lr + 0.5 * (config.lr - config.final_lr) * (1 + math.cos(math.pi * progress))


def _batch_stats(scores: torch.Tensor, batch) -> tuple[int, int]:
    """(correct, counted) strict pairs: mu = 1 pairs whose winner scores higher."""
    strict = batch.mu == 1.0  # (P,)
    correct = (scores[batch.winners] > scores[batch.losers]) & strict
    return int(correct.sum()), int(strict.sum())


def train_reward_model(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    data: list[RankedPrompt],
    config: RewardModelConfig,
    log: Log | None = None,
) -> dict:
    """Trains in place, where the model is; logs loss, accuracy and tie rate every step. Returns the
    last step's figures.

    Dropout stays off (eval mode) so the scores trained on are the scores used.
    """
    device = model.head.weight.device
    model.eval()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    order = list(range(len(data)))
    steps_per_epoch = math.ceil(len(data) / config.batch_prompts)
    total, step, figures = steps_per_epoch * config.epochs, 0, {}
    for epoch in range(config.epochs):
        random.Random(config.seed + epoch).shuffle(order)
        for start in range(0, len(order), config.batch_prompts):
            items = [data[i] for i in order[start : start + config.batch_prompts]]
            batch = collate(items, tokenizer, config.max_length, config.tie_mode).to(device)
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, total, config)
            scores = model.forward_batch(batch)  # (N,)
            loss = bradley_terry_loss(scores, batch.winners, batch.losers, batch.weights, batch.mu) / batch.n_prompts
            optimiser.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimiser.step()
            step += 1
            correct, counted = _batch_stats(scores.detach(), batch)
            pairs, tied = map(sum, zip(*(count_pairs(item.order) for item in items), strict=True))
            figures = {
                "step": step,
                "steps": total,
                "epoch": epoch,
                "loss": float(loss.detach()),
                "accuracy": correct / counted if counted else None,
                "tie_rate": tied / pairs if pairs else 0.0,
                "lr": optimiser.param_groups[0]["lr"],
                "grad_norm": float(grad_norm),
            }
            if log:
                log(figures)
    return figures


@torch.no_grad()
def evaluate(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    data: list[RankedPrompt],
    config: RewardModelConfig,
) -> dict:
    """Strict accuracy (ties in the labels not counted), loss and tie rate; accuracy per labeler."""
    device = model.head.weight.device
    model.eval()
    correct = counted = pairs = tied = 0
    loss_sum = 0.0
    per_labeler: dict[str, list[int]] = {}
    for start in range(0, len(data), config.batch_prompts):
        items = data[start : start + config.batch_prompts]
        batch = collate(items, tokenizer, config.max_length, config.tie_mode).to(device)
        scores = model.forward_batch(batch)
        loss_sum += float(bradley_terry_loss(scores, batch.winners, batch.losers, batch.weights, batch.mu))
        won = (scores[batch.winners] > scores[batch.losers]) & (batch.mu == 1.0)  # (P,)
        for p, item in enumerate(items):
            strict = (batch.pair_prompt == p) & (batch.mu == 1.0)
            tally = per_labeler.setdefault(item.labeler, [0, 0])
            tally[0] += int(won[strict].sum())
            tally[1] += int(strict.sum())
            all_pairs, tied_pairs = count_pairs(item.order)
            pairs += all_pairs
            tied += tied_pairs
        c, n = _batch_stats(scores, batch)
        correct, counted = correct + c, counted + n
    return {
        "accuracy": correct / counted if counted else None,
        "loss": loss_sum / len(data) if data else None,
        "tie_rate": tied / pairs if pairs else 0.0,
        "pairs": counted,
        "per_labeler": {name: c / n for name, (c, n) in per_labeler.items() if n},
    }


@torch.no_grad()
def score_pairs(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[str, str]],
    max_length: int,
    normalised: bool = True,
    batch_size: int = 16,
) -> torch.Tensor:
    """Scores of (prompt, completion) pairs, encoded exactly as in training; `normalised` adds the
    offset (reference completions average 0). -> (len(pairs),)"""
    device = model.head.weight.device
    model.eval()
    out = []
    for start in range(0, len(pairs), batch_size):
        rows = [encode(tokenizer, p, c, max_length) for p, c in pairs[start : start + batch_size]]
        ids, mask = pad_rows(rows, tokenizer.pad_token_id, left=False)  # (B, L) each
        scores = model.score if normalised else model
        out.append(scores(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out)


def reward_model_scorer(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> Callable[[list[str], list[str]], torch.Tensor]:
    """(prompts, completions) -> their normalised scores (B,): how PPO calls the reward model."""
    return lambda prompts, completions: score_pairs(
        model, tokenizer, list(zip(prompts, completions, strict=True)), max_length
    )


def score_groups(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, groups: list[tuple[str, list[str]]], max_length: int
) -> list[list[float]]:
    """The normalised scores of each prompt's completions, in the order given; completions of
    several prompts share a batch."""
    flat = [(prompt, completion) for prompt, completions in groups for completion in completions]
    scores = score_pairs(model, tokenizer, flat, max_length).tolist() if flat else []
    out, start = [], 0
    for _, completions in groups:
        out.append(scores[start : start + len(completions)])
        start += len(completions)
    return out


def normalise(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, references: list[tuple[str, str]], max_length: int
) -> float:
    """Sets the offset so that the reference completions score 0 on average; returns it."""
    raw = score_pairs(model, tokenizer, references, max_length, normalised=False) if references else None
    offset = -float(raw.mean()) if raw is not None else 0.0
    model.offset.fill_(offset)
    return offset
