"""SFT on the policy, on the tiny model."""

import torch

from tests.core.weights import assert_every_weight_moved, trainable_snapshot
from training.core.config import SFTConfig
from training.core.rankings import RankedPrompt
from training.core.sft import train_sft


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
