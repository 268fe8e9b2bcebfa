"""SFT and DPO on the policy, and critic-free RL (RLOO) in the RL loop, on the tiny model."""

import pytest
import torch

from training.core.config import DPOConfig, PPOConfig, SFTConfig
from training.core.data import collate
from training.core.finetune import completion_token_logprobs, sequence_logprobs, sft_loss, train_dpo, train_sft
from training.core.generation import format_prompt
from training.core.loading import load_model
from training.core.ppo import PPOTrainer
from training.core.rankings import RankedPrompt


@pytest.fixture
def policy(tiny_folder):
    return load_model(str(tiny_folder), tiny_folder.parent)


def full_sequence_answer_logprobs(model, tokenizer, prompt: str, answer: str) -> tuple[torch.Tensor, int]:
    """The answer's tokens (and EOS) log-probs from one plain forward of prompt + answer, no cache."""
    prompt_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + answer_ids])
    logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)  # position t predicts t + 1
    targets = ids[0, 1:]
    picked = logp.gather(-1, targets[:, None]).squeeze(-1)
    return picked[len(prompt_ids) - 1 :], len(answer_ids)


SHARED_PROMPT = [RankedPrompt("What is 2 + 2?", ["Four.", "It is 4, I think"], [[0], [1]]),
                 RankedPrompt("Hi", ["Hello!"], [[0]])]  # fmt: skip
ONE_ANSWER_EACH = [RankedPrompt("What is 2 + 2?", ["It is 4, I think"], [[0]]),
                   RankedPrompt("Hi", ["Hello!"], [[0]])]  # fmt: skip


@pytest.mark.parametrize("items", [SHARED_PROMPT, ONE_ANSWER_EACH], ids=["prompt cache shared", "one forward"])
def test_completion_log_probs_are_those_of_the_answer_tokens_only_as_a_plain_forward_gives(policy, items):
    model, tokenizer = policy
    batch = collate(items, tokenizer, 512, "drop")
    with torch.no_grad():
        got = completion_token_logprobs(model, batch)  # (N, C)
        for row, (prompt, answer) in enumerate([(p.prompt, c) for p in items for c in p.completions]):
            expected, tokens = full_sequence_answer_logprobs(model, tokenizer, prompt, answer)
            assert int(batch.completion_mask[row].sum()) == tokens  # the answer and its EOS: no prompt token
            assert torch.allclose(got[row, :tokens], expected, atol=1e-4)
            assert (got[row, tokens:] == 0).all()  # padding counts nothing
    loss = sft_loss(got, batch.completion_mask)
    assert float(loss) == pytest.approx(float(-got.sum() / batch.completion_mask.sum()))


def trainable_snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_every_weight_moved(before: dict, model) -> None:
    after = dict(model.named_parameters())
    unchanged = [name for name, value in before.items() if torch.equal(value, after[name])]
    assert not unchanged, f"weights that did not move: {unchanged[:5]}"


def test_sft_moves_every_weight_and_lowers_the_loss_on_its_answers(policy):
    model, tokenizer = policy
    examples = [RankedPrompt(f"Question {n}", ["The answer is yes."], [[0]]) for n in range(8)]
    before = trainable_snapshot(model)
    logged = []
    config = SFTConfig(lr=3e-3, epochs=4, patience=0, batch_prompts=4, warmup_ratio=0.0)
    trained, figures = train_sft(model, tokenizer, examples, [], config, log=logged.append)
    assert_every_weight_moved(before, trained)
    assert logged[-1]["loss"] < logged[0]["loss"]
    assert figures["answer_tokens"] == 4 * len(examples) * (len("The answer is yes.") + 1)


def test_sft_with_lora_merges_its_adapters_into_the_weights(policy):
    model, tokenizer = policy
    examples = [RankedPrompt(f"Question {n}", ["Yes."], [[0]]) for n in range(4)]
    before = trainable_snapshot(model)
    trained, _ = train_sft(model, tokenizer, examples, [], SFTConfig(lr=1e-2, epochs=2, lora_rank=4))
    assert not any("lora" in name for name, _ in trained.named_parameters())
    moved = [n for n, p in trained.named_parameters() if not torch.equal(before[n], p)]
    assert any("q_proj" in n for n in moved)


def test_sft_stops_early_and_keeps_the_best_epoch_on_held_out_prompts(policy):
    model, tokenizer = policy
    examples = [RankedPrompt(f"Question {n}", ["Yes."], [[0]]) for n in range(4)]
    heldout = [RankedPrompt("Question 9", ["No, never: zq!"], [[0]])]  # fitting the training set hurts it
    logged = []
    config = SFTConfig(lr=3e-2, epochs=6, patience=1, batch_prompts=4, warmup_ratio=0.0)
    _, figures = train_sft(model, tokenizer, examples, heldout, config, log=logged.append)
    epochs = sorted({f["epoch"] for f in logged})
    assert len(epochs) < 6
    assert figures["best_heldout_loss"] == min(f["heldout_loss"] for f in logged if "heldout_loss" in f)


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
    from training.core import finetune

    model, tokenizer = policy
    data = [RankedPrompt(f"Pick {n}", ["a", "b", "c", "d"], [[0], [1], [2], [3]]) for n in range(4)]
    calls = []
    original = finetune.sequence_logprobs
    monkeypatch.setattr(
        finetune, "sequence_logprobs", lambda m, t, d, *a: calls.append(len(d)) or original(m, t, d, *a)
    )
    train_dpo(model, tokenizer, data, [], DPOConfig(epochs=3, batch_prompts=2))
    assert calls == [4, 0]  # the training rankings once (3 epochs), the (empty) held-out once


def test_sequence_log_probs_sum_the_token_log_probs(policy):
    model, tokenizer = policy
    items = [RankedPrompt("Hi", ["Hello", "Hey there"], [[0], [1]])]
    with torch.no_grad():
        tokens = completion_token_logprobs(model, collate(items, tokenizer, 512, "drop"))
    assert torch.allclose(sequence_logprobs(model, tokenizer, items, 1, 512), tokens.sum(dim=1), atol=1e-5)


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


@pytest.mark.parametrize("method", ["sft", "dpo", "rloo"])
def test_gradient_checkpointing_keeps_fewer_activations_and_trains_to_the_same_weights(tiny_folder, method):
    """Layers recomputed in the backward save for it only their inputs: the bytes saved for backward
    fall, and the weights end where they end without it (the shared-prompt cache given up)."""
    data = [RankedPrompt(f"Pick {n}", ["yes yes", "no", "maybe so"], [[0], [2], [1]]) for n in range(4)]
    trained, saved = [], []
    for checkpointing in (False, True):
        model, tokenizer = load_model(str(tiny_folder), tiny_folder.parent)
        kept = [0]

        def pack(tensor, kept=kept):
            kept[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            if method == "sft":
                config = SFTConfig(lr=1e-3, epochs=1, patience=0, batch_prompts=2, gradient_checkpointing=checkpointing)
                answers = [RankedPrompt(d.prompt, ["yes yes"], [[0]]) for d in data]
                model, _ = train_sft(model, tokenizer, answers, [], config)
            elif method == "dpo":
                config = DPOConfig(lr=1e-3, epochs=1, batch_prompts=2, gradient_checkpointing=checkpointing)
                model, _ = train_dpo(model, tokenizer, data, [], config)
            else:
                torch.manual_seed(0)
                config = PPOConfig.rloo(batch_prompts=2, samples_per_prompt=2, max_new_tokens=4, steps=1, lr=1e-3,
                                        gradient_checkpointing=checkpointing)  # fmt: skip
                trainer = PPOTrainer(model, tokenizer, None, lambda p, c: torch.ones(len(c)), config)
                trainer.step(["Pick 0", "Pick 1"])
                model = trainer.trained_policy()
        trained.append(dict(model.named_parameters()))
        saved.append(kept[0])
    assert saved[1] < 0.7 * saved[0], saved
    for name, weight in trained[0].items():
        assert torch.allclose(weight, trained[1][name], atol=1e-5), name
