"""Snapshots of a model's weights, and the check that training moved every one."""

import torch


def trainable_snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_every_weight_moved(before: dict, model) -> None:
    after = dict(model.named_parameters())
    unchanged = [name for name, value in before.items() if torch.equal(value, after[name])]
    assert not unchanged, f"weights that did not move: {unchanged[:5]}"
