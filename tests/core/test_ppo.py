import math

import pytest
import torch

from training.core.advantages import compute_gae, group_advantages, masked_mean, masked_whiten
from training.core.config import PPOConfig, RewardModelConfig
from training.core.data import RankedPrompt, pair_index
from training.core.losses import clipped_policy_loss, clipped_value_loss, dpo_loss, kl_penalty
from training.core.ppo import PPOTrainer, adaptive_beta, response_logprobs, token_rewards
from training.core.reward_model import new_reward_model


def gae_loop(rewards, values, mask, gamma, lam):
    """The textbook recursion, one row and one step at a time."""
    advantages = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        valid = int(mask[b].sum())
        running = 0.0
        for t in reversed(range(valid)):
            next_value = float(values[b, t + 1]) if t + 1 < valid else 0.0
            delta = float(rewards[b, t]) + gamma * next_value - float(values[b, t])
            running = delta + gamma * lam * running
            advantages[b, t] = running
    return advantages, advantages + values


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_equals_a_plain_python_loop(gamma, lam):
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.float)
    advantages, returns = compute_gae(rewards, values, mask, gamma, lam)
    expected_adv, expected_ret = gae_loop(rewards, values, mask, gamma, lam)
    assert torch.allclose(advantages, expected_adv, atol=1e-6)
    assert torch.allclose(returns * mask, expected_ret * mask, atol=1e-6)


def test_whitening_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, -50.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float)
    whitened = masked_whiten(values, mask)
    other_padding = masked_whiten(torch.where(mask.bool(), values, torch.tensor(1e6)), mask)
    assert torch.allclose(whitened * mask, other_padding * mask)
    assert float(masked_mean(whitened, mask)) == pytest.approx(0.0, abs=1e-6)
    valid = whitened[mask.bool()]
    assert float(valid.var()) == pytest.approx(1.0, abs=1e-4)


def test_the_clipped_policy_loss_matches_hand_values_inside_and_outside_the_range():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.1, 1.5, 1.5, 0.5]]))  # ratios
    advantages = torch.tensor([[2.0, 1.0, -1.0, 1.0]])
    mask = torch.ones(1, 4)
    loss, clipfrac = clipped_policy_loss(new, old, advantages, mask, clip_range=0.2)
    # per token max(-A·r, -A·clip(r)): inside: -2.2; r=1.5,A=+1: max(-1.5,-1.2)=-1.2 (clipped);
    # r=1.5,A=-1: max(1.5,1.2)=1.5; r=0.5,A=+1: max(-0.5,-0.8)=-0.5
    assert float(loss) == pytest.approx((-2.2 - 1.2 + 1.5 - 0.5) / 4)
    assert float(clipfrac) == pytest.approx(1 / 4)


def test_the_clipped_value_loss_matches_hand_values():
    mask = torch.ones(1, 2)
    old, returns = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    values = torch.tensor([[0.5, 0.1]])
    # token 1: v moved 0.5 > 0.2, clipped to 0.2: max(0.25, 0.64) / 2; token 2 inside: 0.81 / 2
    expected = (0.5 * 0.64 + 0.5 * 0.81) / 2
    assert float(clipped_value_loss(values, old, returns, mask, clip_range=0.2)) == pytest.approx(expected)


def test_the_kl_estimators():
    logp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -2.0]])
    assert kl_penalty(logp, ref, "k1")[0].tolist() == pytest.approx([0.5, 0.0])
    assert kl_penalty(logp, ref, "k3")[0].tolist() == pytest.approx([math.exp(-0.5) - 1 + 0.5, 0.0])


def test_the_score_lands_on_the_last_real_token_not_a_pad_slot():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float)
    rewards = token_rewards(torch.tensor([3.0, -2.0]), torch.zeros(2, 4), mask, beta=0.1)
    assert rewards.tolist() == [[0, 0, 3.0, 0], [0, -2.0, 0, 0]]


def test_the_adaptive_beta_moves_towards_the_target():
    config = PPOConfig(kl_target=6.0, kl_horizon=10_000)
    assert adaptive_beta(0.2, 12.0, 1000, config) == pytest.approx(0.2 * (1 + 0.2 * 0.1))  # error clipped
    assert adaptive_beta(0.2, 3.0, 1000, config) == pytest.approx(0.2 * (1 - 0.2 * 0.1))


def fraction_of_a(prompts: list[str], completions: list[str]) -> torch.Tensor:
    """A synthetic reward: the share of the letter 'a' in the completion."""
    return torch.tensor([c.count("a") / max(1, len(c)) for c in completions])


def trainer_for(tiny_folder, config: PPOConfig, score=fraction_of_a) -> PPOTrainer:
    from training.core.loading import load_model

    policy, tokenizer = load_model(str(tiny_folder), tiny_folder.parent)
    critic, _ = new_reward_model(str(tiny_folder), tiny_folder.parent, RewardModelConfig.instructgpt(seed=config.seed))
    return PPOTrainer(policy, tokenizer, critic, score, config)


PROMPTS = [f"Say something {n}" for n in range(16)]


def test_kl_is_zero_when_the_policy_is_the_reference(tiny_folder):
    trainer = trainer_for(tiny_folder, PPOConfig(batch_prompts=4, max_new_tokens=8))
    batch = trainer.rollout(PROMPTS[:4])
    # The sampler's log-probs come from generation (KV cache); the reference's from one full forward.
    kl = kl_penalty(batch.logprobs, batch.ref_logprobs, "k1") * batch.response_mask
    assert float(kl.abs().max()) < 1e-4


def test_a_completion_without_eos_gets_the_penalty(tiny_folder):
    zero = lambda prompts, completions: torch.zeros(len(completions))  # noqa: E731
    trainer = trainer_for(tiny_folder, PPOConfig(max_new_tokens=3, missing_eos_penalty=-1.0), score=zero)
    batch = trainer.rollout(PROMPTS)
    assert (~batch.has_eos).any()
    assert batch.scores.tolist() == [0.0 if eos else -1.0 for eos in batch.has_eos.tolist()]


def test_recomputed_log_probs_with_the_temperature_match_the_samplers(tiny_folder):
    trainer = trainer_for(tiny_folder, PPOConfig(temperature=0.7, max_new_tokens=6))
    tokenizer, policy = trainer.tokenizer, trainer.unwrapped_policy
    query = tokenizer(["Hello there", "Hi"], return_tensors="pt", padding=True)
    out = policy.generate(
        **query, do_sample=True, temperature=0.7, top_k=0, max_new_tokens=6, min_new_tokens=6,
        pad_token_id=tokenizer.pad_token_id, output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip
    response = out.sequences[:, query["input_ids"].shape[1] :]  # (2, 6), no EOS: min_new_tokens
    sampler = torch.stack(out.logits, dim=1).div(0.7).log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
    input_ids = torch.cat([query["input_ids"], response], dim=1)
    mask = torch.cat([query["attention_mask"], torch.ones_like(response)], dim=1)
    with torch.no_grad():
        recomputed, _ = response_logprobs(policy, input_ids, mask, response, temperature=0.7)
    assert torch.allclose(recomputed, sampler, atol=1e-4)


def test_ppo_raises_a_synthetic_reward_with_finite_kl_and_changes_every_parameter(tiny_folder):
    config = PPOConfig(
        steps=30, batch_prompts=8, minibatch_size=4, ppo_epochs=2, lr=2e-3, critic_lr=1e-3,
        max_new_tokens=12, temperature=1.0, kl_coef=0.02, missing_eos_penalty=0.0, seed=0,
    )  # fmt: skip
    trainer = trainer_for(tiny_folder, config)
    before = {name: p.detach().clone() for name, p in trainer.unwrapped_policy.named_parameters()}
    history = trainer.train(PROMPTS)
    first = sum(h["score"] for h in history[:5]) / 5
    last = sum(h["score"] for h in history[-5:]) / 5
    assert last > first + 0.1, (first, last)
    assert all(math.isfinite(h["kl"]) and math.isfinite(h["value_loss"]) for h in history)
    assert {"approx_kl", "clipfrac", "entropy", "explained_variance", "eos_rate", "mean_length", "beta"} <= set(
        history[0]
    )
    unchanged = [n for n, p in trainer.unwrapped_policy.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []


def test_the_same_seed_gives_the_same_first_step(tiny_folder):
    config = PPOConfig(steps=1, batch_prompts=4, minibatch_size=2, ppo_epochs=1, max_new_tokens=8, seed=5)
    metrics = lambda h: {k: v for k, v in h.items() if not k.startswith("time_")}  # noqa: E731
    first = metrics(trainer_for(tiny_folder, config).train(PROMPTS)[0])
    again = metrics(trainer_for(tiny_folder, config).train(PROMPTS)[0])
    assert first == pytest.approx(again)


def test_one_minibatch_per_rollout_forwards_the_critic_once_and_changes_no_figure(tiny_folder, monkeypatch):
    config = PPOConfig(steps=2, batch_prompts=4, minibatch_size=4, ppo_epochs=1, max_new_tokens=8, seed=3)
    metrics = lambda h: {k: v for k, v in h.items() if not k.startswith("time_")}  # noqa: E731

    def counted(trainer):
        calls = []
        critic = trainer.accelerator.unwrap_model(trainer.critic)
        forward = critic.token_values
        monkeypatch.setattr(critic, "token_values", lambda *a: calls.append(1) or forward(*a))
        return trainer, calls

    once, once_calls = counted(trainer_for(tiny_folder, config))
    fast = once.train(PROMPTS)  # sampling draws on torch's global generator: one trainer at a time
    twice, twice_calls = counted(trainer_for(tiny_folder, config))
    monkeypatch.setattr(twice, "_one_update_per_rollout", lambda batch_size: False)
    slow = twice.train(PROMPTS)
    assert (len(once_calls), len(twice_calls)) == (2, 4)
    for a, b in zip(fast, slow, strict=True):
        assert metrics(a) == pytest.approx(metrics(b), rel=1e-4, abs=1e-6)


def test_one_backward_per_model_gives_the_joint_losss_gradients(tiny_folder):
    config = PPOConfig(batch_prompts=4, max_new_tokens=8, lr=0.0, critic_lr=0.0, max_grad_norm=1e9, vf_coef=0.3)
    trainer = trainer_for(tiny_folder, config)
    batch = trainer.rollout(PROMPTS[:4])
    mask = batch.response_mask.float()
    advantages, returns = torch.randn_like(mask), torch.randn_like(mask)
    trainer._update(batch, torch.arange(4), advantages, returns)  # lr 0, no clipping: grads are left as made
    policy, critic = trainer.unwrapped_policy, trainer.accelerator.unwrap_model(trainer.critic)
    named = lambda: [*policy.named_parameters(prefix="policy"), *critic.named_parameters(prefix="critic")]  # noqa: E731
    split = {n: p.grad.clone() for n, p in named()}
    policy.zero_grad(), critic.zero_grad()
    logprobs, _ = response_logprobs(policy, batch.input_ids, batch.attention_mask, batch.response, 0.7, True)
    values = critic.token_values(batch.input_ids, batch.attention_mask, batch.response.shape[1], True)
    pg_loss, _ = clipped_policy_loss(logprobs, batch.logprobs, advantages, mask, config.clip_range)
    v_loss = clipped_value_loss(values.float(), batch.values, returns, mask, config.clip_range_value)
    (pg_loss + config.vf_coef * v_loss).backward()
    joint = {n: p.grad for n, p in named()}
    assert split.keys() == joint.keys()
    for name, grad in joint.items():
        assert torch.allclose(split[name], grad, rtol=1e-4, atol=1e-7), name


def test_with_lora_the_reference_is_the_base_with_the_adapter_off(tiny_folder):
    config = PPOConfig(steps=3, batch_prompts=4, minibatch_size=2, max_new_tokens=8, lr=1e-2, lora_rank=4)
    trainer = trainer_for(tiny_folder, config)
    batch = trainer.rollout(PROMPTS[:4])
    kl = kl_penalty(batch.logprobs, batch.ref_logprobs, "k1") * batch.response_mask
    assert float(kl.abs().max()) < 1e-4  # LoRA starts as a no-op
    history = trainer.train(PROMPTS)
    assert history[-1]["kl"] != 0.0
    merged = trainer.trained_policy()
    assert not any("lora" in name for name, _ in merged.named_parameters())


@pytest.mark.parametrize("estimator", ["rloo", "group_norm"])
def test_group_advantages_equal_a_plain_loop(estimator):
    scores = torch.tensor([[1.0, 2.0, 4.0, 7.0], [0.5, 0.5, -1.0, 3.0]])  # (P=2, k=4)
    got = group_advantages(scores, estimator)
    for p, row in enumerate(scores.tolist()):
        for i, s in enumerate(row):
            others = [x for j, x in enumerate(row) if j != i]
            if estimator == "rloo":
                expected = s - sum(others) / len(others)
            else:
                mean = sum(row) / len(row)
                std = math.sqrt(sum((x - mean) ** 2 for x in row) / (len(row) - 1))
                expected = (s - mean) / (std + 1e-6)
            assert float(got[p, i]) == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(group_advantages(scores, "rloo").sum(dim=-1), torch.zeros(2), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 samples"):
        group_advantages(scores[:, :1])


def test_the_dpo_loss_over_k_completions_equals_the_sum_over_its_pairs():
    policy = torch.tensor([-3.0, -5.0, -4.0])  # (K=3,) summed log-probs
    reference = torch.tensor([-3.5, -4.0, -4.0])
    order = [[0], [2], [1]]  # 0 best, then 2, then 1
    pairs = pair_index([RankedPrompt("p", ["a", "b", "c"], order)], "drop")
    beta = 0.1
    ratio = (policy - reference).tolist()  # [0.5, -1.0, 0.0]
    expected = sum(
        -math.log(1 / (1 + math.exp(-beta * (ratio[w] - ratio[lo])))) / 3 for w, lo in [(0, 2), (0, 1), (2, 1)]
    )
    loss = dpo_loss(policy, reference, pairs.winners, pairs.losers, pairs.weights, pairs.mu, beta)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
