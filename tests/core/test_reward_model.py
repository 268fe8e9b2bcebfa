import math
import random

import pytest
import torch

from training.core.config import RewardModelConfig
from training.core.data import RankedPrompt, collate, ranked_pairs
from training.core.losses import bradley_terry_loss
from training.core.reward_model import (
    last_token_index,
    load_reward_model,
    new_reward_model,
    normalise,
    save_reward_model,
    score_pairs,
)
from training.core.reward_training import evaluate, train_reward_model


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_the_k3_loss_with_a_tie_matches_a_hand_computation_in_both_tie_modes():
    scores = torch.tensor([2.0, 0.0, -1.0])  # completions 0, 1, 2
    order = [[0], [1, 2]]  # 0 best; 1 and 2 tied
    strict = -(logsig(2.0) + logsig(3.0))  # 0 > 1 (margin 2), 0 > 2 (margin 3)
    tie = -(0.5 * logsig(1.0) + 0.5 * logsig(-1.0))  # 1 ~ 2 (margin 1), target 0.5
    for mode, expected in [("drop", strict / 3), ("half", (strict + tie) / 3)]:
        pairs = ranked_pairs(order, mode)
        winners, losers, mu = (torch.tensor(x) for x in zip(*pairs, strict=True))
        weights = torch.full((len(pairs),), 1 / 3)  # 1 / C(3, 2)
        assert float(bradley_terry_loss(scores, winners, losers, weights, mu)) == pytest.approx(expected, abs=1e-6)
    assert (strict / 3, (strict + tie) / 3) == pytest.approx((0.0585049, 0.3295923), abs=1e-6)


@pytest.fixture(scope="module")
def rm(tiny_folder):
    return new_reward_model(str(tiny_folder), tiny_folder.parent, RewardModelConfig.instructgpt(seed=3))


def test_the_last_real_token_is_found_for_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4]


def test_the_score_is_the_same_unpadded_left_padded_and_right_padded(rm):
    model, tokenizer = rm
    short, long = [5, 9, 2], [7, 8, 11, 12, 2]  # both end with EOS (id 2)
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        alone = [float(model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))) for ids in (short, long)]
        right = model(torch.tensor([short + [pad, pad], long]), torch.tensor([[1, 1, 1, 0, 0], [1] * 5]))
        left = model(torch.tensor([[pad, pad] + short, long]), torch.tensor([[0, 0, 1, 1, 1], [1] * 5]))
    assert right.tolist() == pytest.approx(alone, abs=1e-5)
    assert left.tolist() == pytest.approx(alone, abs=1e-5)


def test_the_k_way_batched_loss_equals_the_mean_of_per_pair_losses_from_separate_forwards(rm):
    model, tokenizer = rm
    items = [
        RankedPrompt("Pick one", ["alpha", "be", "gamma!", "d"], [[2], [0, 3], [1]]),
        RankedPrompt("Another?", ["x y z", "no", "yes, surely"], [[1], [2], [0]]),
    ]
    batch = collate(items, tokenizer, max_length=64, tie_mode="drop")
    with torch.no_grad():
        batched = (
            float(bradley_terry_loss(model.forward_batch(batch), batch.winners, batch.losers, batch.weights, batch.mu))
            / 2
        )
        per_prompt = []
        for item in items:
            losses = []
            for w, loser, _ in ranked_pairs(item.order, "drop"):
                w_score, l_score = score_pairs(
                    model,
                    tokenizer,
                    [(item.prompt, item.completions[w]), (item.prompt, item.completions[loser])],
                    64,
                    batch_size=1,
                )
                losses.append(-logsig(float(w_score - l_score)))
            k = len(item.completions)
            per_prompt.append(sum(losses) / (k * (k - 1) / 2))
    assert batched == pytest.approx(sum(per_prompt) / 2, abs=1e-5)
    assert batch.completion_ids.shape[0] == 7  # one row per completion, not two per pair
    assert batch.prompt_ids.shape[0] == 2  # and each prompt once


def synthetic(n: int, seed: int) -> list[RankedPrompt]:
    """Completions holding the marker '#' beat those without; ties within each side."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnop "
    items = []
    for i in range(n):
        texts = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(4)]
        marked = rng.sample(range(4), 2)
        texts = [t[: len(t) // 2] + "#" + t[len(t) // 2 :] if j in marked else t for j, t in enumerate(texts)]
        rest = [j for j in range(4) if j not in marked]
        items.append(RankedPrompt(f"prompt {i}", texts, [[marked[0]], [marked[1]], rest], labeler=f"l{i % 2}"))
    return items


def test_a_short_training_learns_a_synthetic_preference_on_held_out_prompts(tiny_folder):
    config = RewardModelConfig.instructgpt(lr=3e-3, final_lr=3e-4, epochs=3, batch_prompts=8, seed=0, max_length=64)
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    train, heldout = synthetic(160, seed=1), synthetic(40, seed=2)
    # The marker-vs-no-marker pairs are learnable; [marked[0]] over [marked[1]] is noise.
    before = evaluate(model, tokenizer, heldout, config)
    logged = []
    train_reward_model(model, tokenizer, train, config, log=logged.append)
    after = evaluate(model, tokenizer, heldout, config)
    learnable = [
        RankedPrompt(i.prompt, i.completions, [i.order[0] + i.order[1], i.order[2]], i.labeler) for i in heldout
    ]
    assert evaluate(model, tokenizer, learnable, config)["accuracy"] >= 0.9
    assert after["loss"] < before["loss"]
    assert logged[-1]["step"] == logged[-1]["steps"] == 60
    assert all(math.isfinite(f["loss"]) for f in logged)
    assert set(after["per_labeler"]) == {"l0", "l1"}
    assert after["tie_rate"] == pytest.approx(1 / 6)  # one tied pair of six per prompt


def test_after_normalisation_references_score_zero_on_average_and_it_survives_a_save(rm, tmp_path):
    model, tokenizer = rm
    references = [(f"q{i}", f"reference answer {i}") for i in range(10)]
    offset = normalise(model, tokenizer, references, max_length=64)
    scores = score_pairs(model, tokenizer, references, 64)
    assert float(scores.mean()) == pytest.approx(0.0, abs=1e-3)
    save_reward_model(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    assert float(loaded.offset) == pytest.approx(offset)
    assert score_pairs(loaded, tokenizer, references, 64).tolist() == pytest.approx(scores.tolist(), abs=1e-5)


def test_dropping_the_layers_the_heads_do_not_read_changes_no_score_or_value(tiny_folder, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from training.core.reward_model import RewardModel, drop_unread_layers, load_reward_model, save_reward_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    model = RewardModel(LlamaModel(config), heads=3, pooling="mean", layer=2).eval()
    items = [RankedPrompt("Hi there", ["Hello!", "Hey, how are you?"], [[0], [1]])]
    batch = collate(items, tokenizer, 64, "drop")
    ids = torch.cat([batch.prompt_ids[[0, 0]], batch.completion_ids], dim=1)
    mask = torch.cat([batch.prompt_mask[[0, 0]], batch.completion_mask], dim=1)
    with torch.no_grad():
        scores, values = model.forward_batch(batch), model.token_values(ids, mask, 4)
        drop_unread_layers(model)
        assert len(model.backbone.layers) == 3  # the read layer's output, and one above it
        assert torch.allclose(model.forward_batch(batch), scores, atol=1e-5)
        assert torch.allclose(model.token_values(ids, mask, 4), values, atol=1e-5)
    save_reward_model(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    assert (loaded.trunk_layers, loaded.layer, len(loaded.backbone.layers)) == (6, 2, 3)  # warm starts compare 6
    with torch.no_grad():
        assert torch.allclose(loaded.forward_batch(batch), scores, atol=1e-5)
