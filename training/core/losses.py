"""Losses as small pure functions: tensors in, tensors out."""

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    scores: torch.Tensor, winners: torch.Tensor, losers: torch.Tensor, weights: torch.Tensor, mu: torch.Tensor
) -> torch.Tensor:
    """Sum over pairs of weight × −[μ·log σ(r_w − r_l) + (1 − μ)·log σ(r_l − r_w)], averaged over
    the members of an ensemble.

    scores: (N,) or (N, E) for E members; winners, losers, mu: (P,); weights: (P,) or (P, E) (a
    member's own weights: its bootstrap of the rankings) -> scalar. With weights 1/C(K,2) and the sum
    divided by the number of prompts, each prompt counts once, as in InstructGPT.
    """
    if scores.dim() == 1:
        scores = scores[:, None]  # (N, 1)
    margin = scores[winners] - scores[losers]  # (P, E)
    mu = mu[:, None]  # (P, 1)
    pair_loss = -(mu * F.logsigmoid(margin) + (1 - mu) * F.logsigmoid(-margin))  # (P, E)
    weights = weights if weights.dim() == 2 else weights[:, None]  # (P, E) or (P, 1)
    return (weights * pair_loss).sum() / scores.shape[1]


def dpo_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    winners: torch.Tensor,
    losers: torch.Tensor,
    weights: torch.Tensor,
    mu: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO over K-way rankings: the Bradley–Terry loss of the implicit rewards β·(log π − log π_ref),
    so each completion is forwarded once per model and all C(K,2) pairs −log σ(β·(Δ_w − Δ_l)) come
    from the K log-ratios; ties are dropped or at target μ = 0.5 as for the reward model.

    policy_logps, reference_logps: (N,) summed log-probs of each completion's tokens; winners,
    losers, weights, mu: (P,) -> scalar
    """
    return bradley_terry_loss(beta * (policy_logps - reference_logps), winners, losers, weights, mu)


def sft_loss(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the answer tokens; prompt tokens are never among them.
    (N, C), (N, C) -> scalar"""
    return -(token_logprobs * mask).sum() / mask.sum().clamp(min=1)


def clipped_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, averaged over valid tokens; also the clipped fraction.

    (B, T) each -> (loss, clipfrac)
    """
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    pg_loss = torch.max(pg_loss1, pg_loss2)  # (B, T)
    clipfrac = ((pg_loss2 > pg_loss1).float() * mask).sum() / mask.sum().clamp(min=1)
    return (pg_loss * mask).sum() / mask.sum().clamp(min=1), clipfrac


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """0.5 · max((v − R)², (v_clipped − R)²), v_clipped kept within clip_range of the old value.

    (B, T) each -> scalar, averaged over valid tokens.
    """
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    v_loss_unclipped = (values - returns) ** 2
    v_loss_clipped = (v_clipped - returns) ** 2
    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped)  # (B, T)
    return (v_loss * mask).sum() / mask.sum().clamp(min=1)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(π || π_ref) estimate from the sampled tokens' log-probs. (B, T) -> (B, T)

    k1 = log π − log π_ref (unbiased, can be negative per token); k3 = (r − 1) − log r with
    r = π_ref / π (non-negative, lower variance).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kl_estimator must be 'k1' or 'k3', not {estimator!r}")
