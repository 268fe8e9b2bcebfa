"""Critic-free RL (RLOO, GRPO's group normalisation) in the RL loop, on the tiny model."""

import pytest
import torch

from tests.core.weights import assert_every_weight_moved, trainable_snapshot
from training.core.config import PPOConfig
from training.core.ppo import PPOTrainer


def longer_is_better(prompts, completions):
    return torch.tensor([float(len(c)) / 10 for c in completions])


@pytest.mark.parametrize("estimator", ["rloo", "group_norm"])
def test_a_critic_free_step_samples_k_per_prompt_and_moves_every_policy_weight(policy, estimator):
    model, tokenizer = policy
    config = PPOConfig.rloo(advantage_estimator=estimator, batch_prompts=2, max_new_tokens=6, lr=1e-3)
    before = trainable_snapshot(model)
    trainer = PPOTrainer(model, tokenizer, None, longer_is_better, config)
    figures = trainer.step(["Say a", "Say b"])
    assert figures["samples"] == 8
    assert "value_loss" not in figures and figures["score_spread"] >= 0
    assert_every_weight_moved(before, trainer.unwrapped_policy)


def test_rloo_with_the_kl_in_the_loss_logs_it_and_rewards_the_score_alone(policy):
    model, tokenizer = policy
    config = PPOConfig.rloo(batch_prompts=2, max_new_tokens=6, kl_in_reward=False, kl_coef=0.5)
    trainer = PPOTrainer(model, tokenizer, None, longer_is_better, config)
    first = trainer.step(["Say a", "Say b"])
    assert first["kl_loss"] == pytest.approx(0.0, abs=1e-4)  # the policy is still its reference
    assert first["reward"] == pytest.approx(first["score"], abs=1e-5)
    second = trainer.step(["Say a", "Say b"])
    assert second["kl_loss"] > 0


def test_rloo_raises_the_score_over_a_few_steps(policy):
    model, tokenizer = policy
    torch.manual_seed(0)
    config = PPOConfig.rloo(batch_prompts=4, max_new_tokens=12, lr=3e-3, kl_coef=0.0, temperature=1.0,
                            missing_eos_penalty=0.0, steps=12)  # fmt: skip
    trainer = PPOTrainer(model, tokenizer, None, longer_is_better, config)
    history = trainer.train([f"Say {n}" for n in range(8)])
    first, last = sum(h["score"] for h in history[:3]) / 3, sum(h["score"] for h in history[-3:]) / 3
    assert last > first


def test_a_critic_goes_with_gae_only(policy):
    model, tokenizer = policy
    with pytest.raises(ValueError, match="critic"):
        PPOTrainer(model, tokenizer, None, longer_is_better, PPOConfig())
    with pytest.raises(ValueError, match="samples_per_prompt"):
        PPOConfig(advantage_estimator="rloo")
    with pytest.raises(ValueError, match="advantage_estimator"):
        PPOConfig(advantage_estimator="vtrace")
