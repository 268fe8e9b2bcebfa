"""Direct preference optimisation (DPO) of the policy from K-way rankings (Rafailov et al. 2023): the
reference's log-probs computed once, every C(K,2) pair's loss from the K log-ratios."""

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.core.config import DPOConfig
from training.core.data import collate, completion_rows, pair_index
from training.core.devices import CPU, Placement
from training.core.fit import Log, fit, schedule_of
from training.core.logprobs import completion_token_logprobs, sequence_logprobs
from training.core.lora import merged, with_lora
from training.core.losses import dpo_loss
from training.core.rankings import RankedPrompt
from training.core.recompute import recompute_layers


def implicit_accuracy(
    policy_logps: torch.Tensor, reference_logps: torch.Tensor, data: list[RankedPrompt], tie_mode: str
) -> tuple[int, int]:
    """(correct, counted) strict pairs whose winner has the higher implicit reward log π − log π_ref."""
    pairs = pair_index(data, tie_mode)
    margin = policy_logps - reference_logps  # (N,)
    strict = pairs.mu == 1.0
    return int(((margin[pairs.winners] > margin[pairs.losers]) & strict).sum()), int(strict.sum())


def train_dpo(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt],
    heldout: list[RankedPrompt], config: DPOConfig, log: Log | None = None,
    reference: PreTrainedModel | None = None, placement: Placement = CPU,
) -> tuple[PreTrainedModel, dict]:  # fmt: skip
    """DPO from rankings. The reference's log-probs are computed once, before any step: from
    `reference` when given (an SFT anchor the policy has moved from), else from the policy's own
    starting weights, so no second copy of the model is held while training. Logs, each step, the
    loss, the chosen/rejected implicit rewards and the held-out accuracy of the implicit reward.
    Returns the trained policy (LoRA merged) and the last figures."""
    device = next(policy.parameters()).device
    torch.manual_seed(config.seed)
    reference_model = reference if reference is not None else policy
    ref_train = sequence_logprobs(reference_model, tokenizer, data, config.batch_prompts, config.max_length, placement)
    ref_heldout = sequence_logprobs(reference_model, tokenizer, heldout, config.batch_prompts, config.max_length,
                                    placement)  # fmt: skip
    del reference, reference_model  # the reference's figures are all it is needed for: free its memory
    rows = completion_rows(data)
    model = with_lora(policy, config.lora_rank) if config.lora_rank else policy.requires_grad_(True)
    if config.gradient_checkpointing:
        recompute_layers(model)
    pairs_seen = 0

    def loss_of(indices: list[int]) -> tuple[torch.Tensor, dict]:
        nonlocal pairs_seen
        items = [data[i] for i in indices]
        batch = collate(items, tokenizer, config.max_length, config.tie_mode).to(device)
        policy_logps = completion_token_logprobs(model, batch).sum(dim=1)  # (N,)
        reference_logps = torch.cat([ref_train[rows[i].start : rows[i].stop] for i in indices]).to(device)  # (N,)
        loss = dpo_loss(policy_logps, reference_logps, batch.winners, batch.losers, batch.weights, batch.mu,
                        config.beta) / len(items)  # fmt: skip
        rewards = config.beta * (policy_logps.detach() - reference_logps)  # (N,)
        correct, counted = implicit_accuracy(policy_logps.detach().cpu(), reference_logps.cpu(), items, config.tie_mode)
        pairs_seen += len(batch.winners)
        return (
            loss,
            float(len(items)),
            {
                "reward_chosen": float(rewards[batch.winners].mean()) if len(batch.winners) else None,
                "reward_rejected": float(rewards[batch.losers].mean()) if len(batch.losers) else None,
                "accuracy": correct / counted if counted else None,
                "pairs": pairs_seen,
            },
        )

    @torch.no_grad()
    def heldout_figures() -> dict:
        logps = sequence_logprobs(model, tokenizer, heldout, config.batch_prompts, config.max_length, placement)
        pairs = pair_index(heldout, config.tie_mode)
        loss = dpo_loss(logps, ref_heldout, pairs.winners, pairs.losers, pairs.weights, pairs.mu, config.beta)
        correct, counted = implicit_accuracy(logps, ref_heldout, heldout, config.tie_mode)
        return {"heldout_loss": float(loss) / len(heldout), "heldout_accuracy": correct / counted if counted else None,
                "heldout_pairs": counted}  # fmt: skip

    figures = fit(model, len(data), loss_of, heldout_figures if heldout else None, schedule_of(config), log,
                  heldout_every_step=True, placement=placement)  # fmt: skip
    trained = merged(model, bool(config.lora_rank))
    return trained.requires_grad_(False), figures
