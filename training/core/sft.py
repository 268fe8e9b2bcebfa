"""Supervised fine-tuning (SFT) of the policy on demonstrations: the loss on the answer tokens only."""

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.core.config import SFTConfig
from training.core.data import RewardBatch, collate
from training.core.devices import CPU, Placement
from training.core.distributed import current
from training.core.fit import Log, fit, schedule_of
from training.core.logprobs import completion_token_logprobs
from training.core.lora import merged, with_lora
from training.core.losses import sft_loss
from training.core.rankings import RankedPrompt
from training.core.recompute import recompute_layers


def train_sft(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[RankedPrompt],
    heldout: list[RankedPrompt], config: SFTConfig, log: Log | None = None, placement: Placement = CPU,
) -> tuple[PreTrainedModel, dict]:  # fmt: skip
    """Fine-tunes on (prompt, answers) items: each RankedPrompt's completions are answers to its
    prompt, the forwards in `placement`'s compute dtype. Returns the trained policy (LoRA merged)
    and the last figures with `answer_tokens`."""
    device = next(policy.parameters()).device
    torch.manual_seed(config.seed)
    model = with_lora(policy, config.lora_rank) if config.lora_rank else policy.requires_grad_(True)
    if config.gradient_checkpointing:
        recompute_layers(model)

    def batch_of(items: list[RankedPrompt]) -> RewardBatch:
        return collate(items, tokenizer, config.max_length, "drop").to(device)

    tokens_seen = 0

    def loss_of(indices: list[int]) -> tuple[torch.Tensor, dict]:
        nonlocal tokens_seen
        batch = batch_of([examples[i] for i in indices])
        tokens = int(batch.completion_mask.sum())
        tokens_seen += tokens
        loss = sft_loss(completion_token_logprobs(model, batch), batch.completion_mask)
        return loss, float(tokens), {"tokens": tokens_seen}

    @torch.no_grad()
    def heldout_figures() -> dict:
        total, count = 0.0, 0
        for start in range(0, len(heldout), config.batch_prompts):
            batch = batch_of(heldout[start : start + config.batch_prompts])
            total -= float((completion_token_logprobs(model, batch) * batch.completion_mask).sum())
            count += int(batch.completion_mask.sum())
        return {"heldout_loss": total / max(count, 1)}

    figures = fit(model, len(examples), loss_of, heldout_figures if heldout else None, schedule_of(config), log,
                  placement=placement)  # fmt: skip
    trained = merged(model, bool(config.lora_rank))
    answer_tokens = int(current().sum([tokens_seen])[0])  # every rank's share of the answers
    return trained.requires_grad_(False), {**figures, "answer_tokens": answer_tokens}
