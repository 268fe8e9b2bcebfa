"""DPO on the policy, on the tiny model."""

import pytest
import torch

from tests.core.weights import assert_every_weight_moved, trainable_snapshot
from training.core import dpo
from training.core.config import DPOConfig
from training.core.dpo import train_dpo
from training.core.rankings import RankedPrompt


def test_dpo_moves_every_weight_and_raises_the_winners_implicit_reward(policy):
    model, tokenizer = policy
    data = [RankedPrompt(f"Pick {n}", ["yes yes", "no", "maybe so", "nope"], [[0], [2], [1, 3]]) for n in range(8)]
    heldout = [RankedPrompt("Pick 99", ["yes yes", "no", "maybe so", "nope"], [[0], [2], [1, 3]])]
    before = trainable_snapshot(model)
    logged = []
    config = DPOConfig(lr=1e-3, epochs=3, batch_prompts=4, beta=0.1, warmup_ratio=0.0)
    trained, figures = train_dpo(model, tokenizer, data, heldout, config, log=logged.append)
    assert_every_weight_moved(before, trained)
    assert logged[-1]["loss"] < logged[0]["loss"]
    assert all("heldout_accuracy" in f for f in logged)  # logged every step
    assert figures["heldout_accuracy"] == 1.0 and figures["heldout_pairs"] == 5  # ties dropped: 6 - 1 pairs
    assert logged[-1]["reward_chosen"] > logged[-1]["reward_rejected"]


def test_dpo_loss_starts_at_log_2_when_the_policy_is_its_reference(policy):
    model, tokenizer = policy
    data = [RankedPrompt("Pick", ["a", "b", "c"], [[0], [1], [2]]) for _ in range(2)]
    logged = []
    train_dpo(model, tokenizer, data, [], DPOConfig(lr=1e-9, epochs=1, batch_prompts=2), log=logged.append)
    assert logged[0]["loss"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-4)


def test_the_dpo_reference_is_read_once_per_completion(policy, monkeypatch):
    model, tokenizer = policy
    data = [RankedPrompt(f"Pick {n}", ["a", "b", "c", "d"], [[0], [1], [2], [3]]) for n in range(4)]
    calls = []
    original = dpo.sequence_logprobs
    monkeypatch.setattr(dpo, "sequence_logprobs", lambda m, t, d, *a: calls.append(len(d)) or original(m, t, d, *a))
    train_dpo(model, tokenizer, data, [], DPOConfig(epochs=3, batch_prompts=2))
    assert calls == [4, 0]  # the training rankings once (3 epochs), the (empty) held-out once
