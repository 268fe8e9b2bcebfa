"""Training a Bradley–Terry reward model on rankings, sized for tens to thousands of them: a step
schedule over several epochs with early stopping on held-out rankings, a faster head than trunk,
an ensemble of heads each on its own bootstrap, and a trunk that trains, trains low-rank adapters
(LoRA) or stays frozen (then each completion goes through it once, and only the heads train, on
those features)."""

import math
import random
from collections.abc import Callable

import torch
from transformers import PreTrainedTokenizerBase

from training.core.config import RewardModelConfig
from training.core.data import PairIndex, RankedPrompt, collate, completion_rows, count_pairs, pair_index
from training.core.devices import CPU, Placement
from training.core.distributed import Ranks, current
from training.core.fit import lr_scale
from training.core.lora import with_lora
from training.core.losses import bradley_terry_loss
from training.core.reward_model import RewardModel

Log = Callable[[dict], None]
CALIBRATION_BINS = 5


def bootstrap_counts(items: int, heads: int, seed: int) -> torch.Tensor:
    """How often each head sees each ranking: Poisson(1) draws (the online bootstrap), so the heads
    disagree where the data is thin; all ones for a single head. -> (items, heads)"""
    if heads == 1:
        return torch.ones(items, 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.ones(items, heads), generator=generator)


@torch.no_grad()
def completion_features(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt], config: RewardModelConfig,
    placement: Placement = CPU,
) -> torch.Tensor:  # fmt: skip
    """The trunk's output at every completion's last real token, the items' completions laid end to
    end. -> (N, H)"""
    model.eval()
    device = model.head.weight.device
    out = []
    for start in range(0, len(data), config.batch_prompts):
        batch = collate(data[start : start + config.batch_prompts], tokenizer, config.max_length, config.tie_mode)
        with placement.autocast():
            out.append(model.features_batch(batch.to(device)).float())
    return torch.cat(out) if out else torch.zeros(0, model.backbone.config.hidden_size)


class _Scorer:
    """Member scores (N, E) of a list of ranked prompts: through the trunk, or, frozen, from features
    computed once."""

    def __init__(self, model, tokenizer, data, config, features: torch.Tensor | None, placement: Placement = CPU):
        self.model, self.tokenizer, self.data, self.config = model, tokenizer, data, config
        self.features, self.rows, self.placement = features, completion_rows(data), placement

    def __call__(self, indices: list[int]) -> torch.Tensor:
        items = [self.data[i] for i in indices]
        if self.features is not None:
            rows = [r for i in indices for r in self.rows[i]]
            return self.model.members(self.features[rows].to(self.model.head.weight.device))  # (N, E)
        batch = collate(items, self.tokenizer, self.config.max_length, self.config.tie_mode)
        with self.placement.autocast():  # a trained trunk: float32 weights, forward in the compute dtype
            return self.model.members(self.model.features_batch(batch.to(self.model.head.weight.device))).float()


def train_reward_model(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    data: list[RankedPrompt],
    config: RewardModelConfig,
    log: Log | None = None,
    heldout: list[RankedPrompt] | None = None,
    features: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    placement: Placement = CPU,
    ranks: Ranks | None = None,
) -> dict:
    """Trains in place, where the model is, and returns the last step's figures with the epoch kept.
    A trained trunk's forward runs under `placement`'s autocast.

    With `patience` and held-out rankings, training stops after that many epochs without a lower
    held-out loss, and the weights of the best epoch are kept. With a frozen trunk, `features` may
    hold the trunk's outputs for `data` and `heldout` already (`completion_features`). Dropout stays
    off (eval mode) so the scores trained on are the scores used.

    On several processes (`ranks`, by default this process's) every rank walks the same order and
    takes its slice of each batch; the gradients are combined to the whole batch's, so the steps,
    the logged figures and the early stop are those of one process (training.core.distributed).
    """
    model.eval()
    ranks = ranks or current()
    frozen = config.trunk == "frozen"
    model.backbone.requires_grad_(config.trunk == "full")
    model.head.requires_grad_(True)  # a model loaded as a scorer is frozen whole
    if config.trunk == "lora":
        model.backbone = with_lora(model.backbone, config.lora_rank)
    if frozen and features is None:
        features = (completion_features(model, tokenizer, data, config, placement),
                    completion_features(model, tokenizer, heldout, config, placement) if heldout else None)  # fmt: skip
    train_features, heldout_features = features if frozen else (None, None)
    if config.standardise and not model.standardised:  # a warm start keeps the statistics its heads learned on
        model.set_standardisation(
            train_features if frozen else completion_features(model, tokenizer, data, config, placement)
        )
    scorer = _Scorer(model, tokenizer, data, config, train_features, placement)
    heldout_scorer = _Scorer(model, tokenizer, heldout, config, heldout_features, placement) if heldout else None
    counts = bootstrap_counts(len(data), model.head.out_features, config.seed)  # (n, E)
    groups = [{"params": list(model.head.parameters()), "lr": config.head_lr or config.lr}]
    if not frozen:
        groups.append({"params": [p for p in model.backbone.parameters() if p.requires_grad], "lr": config.lr})
    ranks.broadcast_parameters([p for group in groups for p in group["params"]])  # a fresh head starts alike
    for group in groups:
        group["peak_lr"] = group["lr"]
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = math.ceil(len(data) / config.batch_prompts)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    total, step, figures = steps_per_epoch * epochs, 0, {}
    best_loss, best_state, best_epoch, stale = math.inf, None, epochs - 1, 0
    order = list(range(len(data)))
    for epoch in range(epochs):
        random.Random(config.seed + epoch).shuffle(order)
        for start in range(0, len(order), config.batch_prompts):
            indices = order[start : start + config.batch_prompts]
            scale = lr_scale(step, total, config.warmup_ratio, config.final_lr / config.lr)
            figures = _step(scorer, data, indices, counts, optimiser, scale, config, ranks)
            step += 1
            figures.update(step=step, steps=total, epoch=epoch)
            if log:
                log(figures)
        if heldout_scorer is None or not config.patience:
            continue
        heldout_loss = ranks.agree(_mean_loss(heldout_scorer, heldout, config))  # all stop at the same epoch
        if log:
            log({"step": step, "steps": total, "epoch": epoch, "heldout_loss": heldout_loss})
        if heldout_loss < best_loss:
            best_loss, best_epoch, stale = heldout_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    if config.trunk == "lora":
        model.backbone = model.backbone.merge_and_unload()  # a plain trunk again, saved and loaded as any
    return {**figures, "best_epoch": best_epoch, "heldout_loss": None if best_state is None else best_loss}


def _step(scorer, data, indices, counts, optimiser, scale: float, config: RewardModelConfig, ranks: Ranks) -> dict:
    """One optimiser step on the ranked prompts at `indices`, this rank's slice of them through the
    model; each head weighs them by its bootstrap counts."""
    for group in optimiser.param_groups:
        group["lr"] = group["peak_lr"] * scale
    trainable = [p for group in optimiser.param_groups for p in group["params"]]
    mine = ranks.shard(indices)
    items = [data[i] for i in mine]
    optimiser.zero_grad()
    loss, correct, counted = torch.zeros(()), 0, 0  # a rank left without items this batch
    if items:
        pairs = pair_index(items, config.tie_mode)
        members = scorer(mine)  # (N, E)
        weights = pairs.weights[:, None] * counts[mine][pairs.pair_prompt]  # (P, E)
        loss = bradley_terry_loss(members, pairs.winners, pairs.losers, weights, pairs.mu) / len(items)
        loss.backward()
        correct, counted = _strict_correct(members.detach().mean(dim=-1), pairs)
    ranks.combine_gradients(trainable, len(items))
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
    optimiser.step()
    all_pairs, tied = map(sum, zip(*(count_pairs(item.order) for item in items), strict=True)) if items else (0, 0)
    loss_sum, correct, counted, all_pairs, tied = ranks.sum([float(loss.detach()) * len(items), correct, counted,
                                                             all_pairs, tied])  # fmt: skip
    return {
        "loss": loss_sum / len(indices),
        "accuracy": correct / counted if counted else None,
        "tie_rate": tied / all_pairs if all_pairs else 0.0,
        "lr": optimiser.param_groups[-1]["lr"],
        "grad_norm": float(grad_norm),
    }


def _strict_correct(scores: torch.Tensor, pairs: PairIndex) -> tuple[int, int]:
    """(correct, counted) strict pairs: mu = 1 pairs whose winner scores higher."""
    strict = pairs.mu == 1.0  # (P,)
    correct = (scores[pairs.winners] > scores[pairs.losers]) & strict
    return int(correct.sum()), int(strict.sum())


@torch.no_grad()
def _all_members(scorer: _Scorer, count: int, batch_prompts: int) -> torch.Tensor:
    """Member scores of all `count` ranked prompts of a scorer, a batch at a time. -> (N, E)"""
    chunks = [scorer(list(range(s, min(s + batch_prompts, count)))) for s in range(0, count, batch_prompts)]
    return torch.cat(chunks).float() if chunks else torch.zeros(0, scorer.model.head.out_features)


def _mean_loss(scorer: _Scorer, data: list[RankedPrompt], config: RewardModelConfig) -> float:
    """The held-out loss of the heads' mean score, per ranked prompt."""
    scores = _all_members(scorer, len(data), config.batch_prompts).mean(dim=-1)  # (N,)
    pairs = pair_index(data, config.tie_mode)
    return float(bradley_terry_loss(scores, pairs.winners, pairs.losers, pairs.weights, pairs.mu)) / len(data)


def member_scores(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt], config: RewardModelConfig
) -> torch.Tensor:
    """Every head's raw score of every completion, the items' completions laid end to end. -> (N, E)"""
    model.eval()
    return _all_members(_Scorer(model, tokenizer, data, config, None), len(data), config.batch_prompts)


def evaluate(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt], config: RewardModelConfig
) -> dict:
    """Strict accuracy (ties in the labels not counted), loss, tie rate, accuracy per labeler, and
    the ensemble's spread and calibration (see `evaluate_scores`)."""
    return evaluate_scores(member_scores(model, tokenizer, data, config), data, config.tie_mode)


def evaluate_scores(members: torch.Tensor, data: list[RankedPrompt], tie_mode: str) -> dict:
    """The figures of `evaluate` from member scores (N, E) of the items' completions laid end to end.

    `spread` is the heads' standard deviation, averaged over completions (0 for one head).
    `disagreement` is the heads' standard deviation of P(winner beats loser), averaged over the
    ranked pairs: what the promotion gate compares with the same figure on a new policy's answers
    (None for one head).
    `calibration` bins each strict pair by the predicted probability that its first completion (in
    display order) wins, the heads' mean of σ(margin), against how often it did: a calibrated model
    wins 70% of the pairs it gives 0.7.
    """
    pairs = pair_index(data, tie_mode)
    scores = members.mean(dim=-1)  # (N,)
    correct, counted = _strict_correct(scores, pairs)
    strict = pairs.mu == 1.0
    won = (scores[pairs.winners] > scores[pairs.losers]) & strict  # (P,)
    per_labeler: dict[str, list[int]] = {}
    for p, item in enumerate(data):
        mine = (pairs.pair_prompt == p) & strict
        tally = per_labeler.setdefault(item.labeler, [0, 0])
        tally[0] += int(won[mine].sum())
        tally[1] += int(mine.sum())
    all_pairs, tied = map(sum, zip(*(count_pairs(item.order) for item in data), strict=True)) if data else (0, 0)
    loss = bradley_terry_loss(scores, pairs.winners, pairs.losers, pairs.weights, pairs.mu) if data else None
    return {
        "accuracy": correct / counted if counted else None,
        "loss": float(loss) / len(data) if data else None,
        "tie_rate": tied / all_pairs if all_pairs else 0.0,
        "pairs": counted,
        "per_labeler": {name: c / n for name, (c, n) in per_labeler.items() if n},
        "spread": float(members.std(dim=-1).mean()) if members.shape[-1] > 1 and len(members) else 0.0,
        "disagreement": _disagreement(members, pairs),
        "calibration": calibration(members, pairs),
    }


def _disagreement(members: torch.Tensor, pairs: PairIndex) -> float | None:
    """The heads' std of P(w beats l) = σ(s_w − s_l), averaged over pairs. members: (N, E)"""
    if members.shape[-1] < 2 or not len(pairs.winners):
        return None
    p_win = torch.sigmoid(members[pairs.winners] - members[pairs.losers])  # (P, E)
    return float(p_win.std(dim=-1).mean())


def calibration(members: torch.Tensor, pairs: PairIndex, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Strict pairs binned by the predicted P(first in display order wins): per bin, the mean
    prediction, the share that won, and how many pairs. members: (N, E)"""
    strict = pairs.mu == 1.0
    first = torch.minimum(pairs.winners, pairs.losers)[strict]  # (S,)
    second = torch.maximum(pairs.winners, pairs.losers)[strict]
    first_won = (first == pairs.winners[strict]).float()  # (S,)
    predicted = torch.sigmoid(members[first] - members[second]).mean(dim=-1)  # (S,)
    which = (predicted * bins).long().clamp(max=bins - 1)  # (S,)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            out.append({"bin": [b / bins, (b + 1) / bins], "predicted": float(predicted[inside].mean()),
                        "observed": float(first_won[inside].mean()), "pairs": n})  # fmt: skip
    return out
