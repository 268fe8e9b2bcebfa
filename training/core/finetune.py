"""Fine-tuning the policy on completions it is shown: supervised (SFT, on demonstrations) and from
rankings (DPO). Both read the log-probs of completions after their prompt, each prompt forwarded
once and its keys and values shared by its completions, and both train in one loop (`fit`):
epochs of shuffled batches, warm-up then cosine decay, early stopping on held-out prompts."""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.core.config import DPOConfig, SFTConfig
from training.core.data import RewardBatch, collate, completion_rows, pair_index
from training.core.devices import CPU, Placement
from training.core.distributed import Ranks, current
from training.core.losses import dpo_loss
from training.core.rankings import RankedPrompt
from training.core.recompute import is_recomputed, recompute_layers

Log = Callable[[dict], None]


def completion_token_logprobs(model: PreTrainedModel, batch: RewardBatch) -> torch.Tensor:
    """Log-prob of each completion token (its EOS included) after its prompt; 0 on padding.

    The prompts (G, P) are forwarded once and their cache copied to their completions (N, C): the
    prompt's last position predicts a completion's first token, completion token t predicts t + 1.
    A batch of one completion per prompt (SFT's), or a model whose layers are recomputed in the
    backward (a cache cannot be), forwards each prompt and completion together instead.
    -> (N, C)
    """
    prompt_positions = (batch.prompt_mask.cumsum(dim=1) - 1).clamp(min=0)  # (G, P)
    one_each = torch.equal(batch.group, torch.arange(len(batch.prompt_ids), device=batch.group.device))
    if one_each or (torch.is_grad_enabled() and is_recomputed(model)):
        return _joined_logprobs(model, batch, prompt_positions)
    prompt = model(
        input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=prompt_positions,
        use_cache=True, logits_to_keep=1,
    )  # fmt: skip
    first = prompt.logits[:, -1][batch.group]  # (N, V): left padding puts every prompt's end last
    cache = prompt.past_key_values
    cache.batch_select_indices(batch.group)  # (G, ...) -> (N, ...)
    prompt_lengths = batch.prompt_mask.sum(dim=1)[batch.group]  # (N,)
    inputs = batch.completion_ids[:, :-1]  # (N, C - 1): the last token predicts nothing
    steps = torch.arange(inputs.shape[1], device=prompt_lengths.device)  # (C - 1,)
    rest = model(
        input_ids=inputs,
        attention_mask=torch.cat([batch.prompt_mask[batch.group], batch.completion_mask[:, :-1]], dim=1),
        position_ids=prompt_lengths[:, None] + steps,
        past_key_values=cache,
    ).logits  # (N, C - 1, V)
    return _picked(torch.cat([first[:, None], rest], dim=1), batch)


def _joined_logprobs(model: PreTrainedModel, batch: RewardBatch, prompt_positions: torch.Tensor):
    """Each completion after its prompt row: [prompt | completion] in one forward, the logits kept
    only where they predict a completion token (the prompt's last position onwards). -> (N, C)"""
    group = batch.group
    steps = torch.arange(batch.completion_ids.shape[1] - 1, device=group.device)  # (C - 1,)
    logits = model(
        input_ids=torch.cat([batch.prompt_ids[group], batch.completion_ids[:, :-1]], dim=1),  # (N, P + C - 1)
        attention_mask=torch.cat([batch.prompt_mask[group], batch.completion_mask[:, :-1]], dim=1),
        position_ids=torch.cat(
            [prompt_positions[group], batch.prompt_mask[group].sum(dim=1, keepdim=True) + steps], dim=1
        ),  # fmt: skip
        logits_to_keep=batch.completion_ids.shape[1],
    ).logits  # (N, C, V)
    return _picked(logits, batch)


def _picked(logits: torch.Tensor, batch: RewardBatch) -> torch.Tensor:
    """Log-softmax at each completion token, 0 on padding. (N, C, V) -> (N, C)"""
    logits = logits.float()
    picked = logits.gather(-1, batch.completion_ids[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)  # (N, C)
    return picked * batch.completion_mask


@torch.no_grad()
def sequence_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt], batch_prompts: int,
    max_length: int, placement: Placement = CPU,
) -> torch.Tensor:  # fmt: skip
    """Summed log-prob of every completion of `data`, laid end to end, a batch of prompts at a time
    (a DPO reference's figures, computed once). -> (N,)"""
    model.eval()
    device = next(model.parameters()).device
    with placement.autocast():
        out = [
            completion_token_logprobs(model, collate(data[s : s + batch_prompts], tokenizer, max_length, "drop")
                                      .to(device)).sum(dim=1).float().cpu()
            for s in range(0, len(data), batch_prompts)
        ]  # fmt: skip
    return torch.cat(out) if out else torch.zeros(0)


def with_lora(policy: PreTrainedModel, rank: int) -> PreTrainedModel:
    """The policy with trainable low-rank adapters on every linear layer, its weights frozen."""
    from peft import LoraConfig, get_peft_model  # only with LoRA: importing peft takes seconds

    return get_peft_model(policy, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear"))


def merged(model: PreTrainedModel, lora: bool) -> PreTrainedModel:
    """The trained policy as one plain model: LoRA adapters merged into float32 weights (a bfloat16
    base would round small adapter deltas away), saved and loaded as any checkpoint."""
    return model.float().merge_and_unload() if lora else model


@dataclass(frozen=True)
class Schedule:
    lr: float
    epochs: int
    patience: int
    batch_prompts: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    seed: int

    def scale(self, step: int, total: int) -> float:
        """Share of the peak learning rate: linear warm-up, then a cosine down to 10%."""
        warmup = max(1, round(total * self.warmup_ratio))
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def schedule_of(config: SFTConfig | DPOConfig) -> Schedule:
    return Schedule(config.lr, config.epochs, config.patience, config.batch_prompts, config.warmup_ratio,
                    config.weight_decay, config.max_grad_norm, config.seed)  # fmt: skip


Loss = Callable[[list[int]], tuple[torch.Tensor, float, dict]]
"""Indices into the training items -> (their mean loss, what it is a mean over: items or tokens, and
figures). Never called with no indices."""
Heldout = Callable[[], dict]  # -> figures on held-out prompts, "heldout_loss" among them


def fit(
    model: PreTrainedModel, items: int, loss_of: Loss, heldout: Heldout | None, schedule: Schedule,
    log: Log | None = None, heldout_every_step: bool = False, placement: Placement = CPU, ranks: Ranks | None = None,
) -> dict:  # fmt: skip
    """Trains `model`'s trainable weights on `items` training items, `schedule.batch_prompts` a step,
    each forward under `placement`'s autocast (the backward outside it, as torch.autocast asks).

    With `heldout`, its figures are logged after each epoch (and each step with `heldout_every_step`),
    and with `schedule.patience` training stops after that many epochs without a lower held-out loss,
    keeping the best epoch's weights. Dropout stays off. Returns the last step's figures, with the
    best epoch and its held-out loss.

    On several processes (`ranks`, by default this process's) each rank takes its slice of every
    batch, and the gradients are combined to the whole batch's before the step (training.core.distributed);
    the logged loss is the whole batch's, the other figures rank 0's.
    """
    model.eval()
    ranks = ranks or current()
    trainable = [p for p in model.parameters() if p.requires_grad]
    ranks.broadcast_parameters(trainable)  # fresh adapters start alike on every rank
    optimiser = torch.optim.AdamW(trainable, lr=schedule.lr, weight_decay=schedule.weight_decay)
    steps_per_epoch = math.ceil(items / schedule.batch_prompts)
    total, step, figures = steps_per_epoch * schedule.epochs, 0, {}
    best_loss, best_state, best_epoch, stale = math.inf, None, schedule.epochs - 1, 0
    order = list(range(items))
    for epoch in range(schedule.epochs):
        random.Random(schedule.seed + epoch).shuffle(order)
        for start in range(0, items, schedule.batch_prompts):
            for group in optimiser.param_groups:
                group["lr"] = schedule.lr * schedule.scale(step, total)
            mine = ranks.shard(order[start : start + schedule.batch_prompts])
            optimiser.zero_grad()
            loss, share, figures = torch.zeros(()), 0.0, {}  # a rank left without items this batch
            if mine:
                with placement.autocast():
                    loss, share, figures = loss_of(mine)
                loss.backward()
            ranks.combine_gradients(trainable, share)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, schedule.max_grad_norm)
            optimiser.step()
            step += 1
            batch_loss = ranks.weighted_mean(float(loss.detach()), share)
            figures = {"step": step, "steps": total, "epoch": epoch, "loss": batch_loss,
                       "lr": optimiser.param_groups[0]["lr"], "grad_norm": float(grad_norm), **figures}  # fmt: skip
            if heldout is not None and (heldout_every_step or start + schedule.batch_prompts >= items):
                with placement.autocast():
                    figures.update(heldout())
            if log:
                log(figures)
        if heldout is None or not schedule.patience:
            continue
        heldout_loss = ranks.agree(figures["heldout_loss"])  # every rank stops at the same epoch
        if heldout_loss < best_loss:
            best_loss, best_epoch, stale = heldout_loss, epoch, 0
            best_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        else:
            stale += 1
            if stale >= schedule.patience:
                break
    if best_state is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best_state:
                    p.copy_(best_state[name])
    return {**figures, "best_epoch": best_epoch, "best_heldout_loss": None if best_state is None else best_loss}


# --- SFT -----------------------------------------------------------------------------------------


def sft_loss(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the answer tokens; prompt tokens are never among them.
    (N, C), (N, C) -> scalar"""
    return -(token_logprobs * mask).sum() / mask.sum().clamp(min=1)


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


# --- DPO -----------------------------------------------------------------------------------------


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
