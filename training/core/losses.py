"""Losses as small pure functions: tensors in, tensors out."""

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    scores: torch.Tensor, winners: torch.Tensor, losers: torch.Tensor, weights: torch.Tensor, mu: torch.Tensor
) -> torch.Tensor:
    """Sum over pairs of weight × −[μ·log σ(r_w − r_l) + (1 − μ)·log σ(r_l − r_w)].

    scores: (N,); winners, losers, weights, mu: (P,) -> scalar. With weights 1/C(K,2) and the
    sum divided by the number of prompts, each prompt counts once, as in InstructGPT.
    """
    margin = scores[winners] - scores[losers]  # (P,)
    pair_loss = -(mu * F.logsigmoid(margin) + (1 - mu) * F.logsigmoid(-margin))  # (P,)
    return (weights * pair_loss).sum()
