"""Masked statistics and generalised advantage estimation, as pure tensor functions."""

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions where mask is 1. (B, T), (B, T) -> scalar"""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over masked positions. (B, T), (B, T) -> scalar"""
    mean = masked_mean(values, mask)
    count = mask.sum()
    return ((values - mean) ** 2 * mask).sum() / (count - 1).clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Zero mean, unit variance over masked positions; padding is ignored and left as it was scaled.
    (B, T), (B, T) -> (B, T)"""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each row's valid (mask = 1, left-aligned) tokens.

    rewards, values, mask: (B, T) -> advantages, returns: (B, T). The value after a row's last
    valid token is 0 (the episode ends there); padded positions get 0 advantage.
    """
    batch, steps = rewards.shape
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros(batch, dtype=rewards.dtype, device=rewards.device)  # (B,)
    for t in reversed(range(steps)):
        next_values = values[:, t + 1] * mask[:, t + 1] if t + 1 < steps else torch.zeros_like(lastgaelam)
        delta = rewards[:, t] + gamma * next_values - values[:, t]  # (B,)
        lastgaelam = delta + gamma * lam * lastgaelam * (mask[:, t + 1] if t + 1 < steps else 0)
        advantages[:, t] = lastgaelam * mask[:, t]
    returns = advantages + values
    return advantages, returns


def group_advantages(scores: torch.Tensor, estimator: str = "rloo", eps: float = 1e-6) -> torch.Tensor:
    """Critic-free advantages of k samples per prompt from their scores alone. (P, k) -> (P, k)

    'rloo' (Ahmadian et al. 2024): each sample's score minus the mean of the other k − 1, an
    unbiased baseline. 'group_norm' (GRPO): minus the group's mean, divided by its std (+ eps).
    """
    k = scores.shape[-1]
    if k < 2:
        raise ValueError("A group baseline needs at least 2 samples per prompt.")
    if estimator == "rloo":
        others = (scores.sum(dim=-1, keepdim=True) - scores) / (k - 1)  # (P, k)
        return scores - others
    if estimator == "group_norm":
        mean, std = scores.mean(dim=-1, keepdim=True), scores.std(dim=-1, keepdim=True)  # (P, 1)
        return (scores - mean) / (std + eps)
    raise ValueError(f"estimator must be 'rloo' or 'group_norm', not {estimator!r}")
