"""The loop SFT and DPO train in (`fit`): epochs of shuffled batches, warm-up then cosine decay,
early stopping on held-out prompts; and the learning-rate schedule the reward model shares."""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from training.core.config import DPOConfig, SFTConfig
from training.core.devices import CPU, Placement
from training.core.distributed import Ranks, current

Log = Callable[[dict], None]
FINAL_LR_SHARE = 0.1  # SFT and DPO decay to 10% of the peak learning rate


def lr_scale(step: int, total: int, warmup_ratio: float, final_share: float) -> float:
    """Share of the peak learning rate at `step` of `total`: linear warm-up over `warmup_ratio` of
    the steps, then a cosine down to `final_share`."""
    warmup = max(1, round(total * warmup_ratio))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return final_share + 0.5 * (1 - final_share) * (1 + math.cos(math.pi * progress))


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
    batch, and the gradients are combined to the whole batch's before the step
    (training.core.distributed); the logged loss is the whole batch's, the other figures rank 0's.
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
                group["lr"] = schedule.lr * lr_scale(step, total, schedule.warmup_ratio, FINAL_LR_SHARE)
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
