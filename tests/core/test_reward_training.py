"""Reward-model training for small data: ensemble heads on bootstraps, weighted rankings, early
stopping that keeps the best epoch, a frozen trunk."""

import math

import pytest
import torch

from tests.core.test_reward_model import logsig, synthetic
from training.core.config import RewardModelConfig
from training.core.data import RankedPrompt, encode_parts, pair_index
from training.core.losses import bradley_terry_loss
from training.core.reward_model import load_reward_model, new_reward_model, save_reward_model, score_pairs
from training.core.reward_training import (
    bootstrap_counts,
    completion_features,
    evaluate,
    evaluate_scores,
    member_scores,
    train_reward_model,
)

FAST = {"lr": 3e-3, "final_lr": 3e-4, "batch_prompts": 8, "seed": 0, "max_length": 64}


def test_the_weighted_ensemble_loss_matches_a_hand_computation():
    # Two heads score completions 0, 1, 2; the ranking is 0 > 1 > 2 with weight 0.5 (a half-trusted
    # labeler), so each pair weighs 0.5 / C(3, 2); head 1 saw the ranking twice in its bootstrap.
    scores = torch.tensor([[2.0, 1.0], [0.0, 0.0], [-1.0, 1.0]])  # (N, E)
    pairs = pair_index([RankedPrompt("q", ["a", "b", "c"], [[0], [1], [2]], weight=0.5)], "drop")
    assert pairs.weights.tolist() == pytest.approx([0.5 / 3] * 3)
    weights = pairs.weights[:, None] * torch.tensor([[1.0, 2.0]])  # (P, E)
    head_0 = -(logsig(2.0) + logsig(3.0) + logsig(1.0)) * 0.5 / 3  # margins 0-1, 0-2, 1-2
    head_1 = -(logsig(1.0) + logsig(0.0) + logsig(-1.0)) * 2 * 0.5 / 3
    loss = bradley_terry_loss(scores, pairs.winners, pairs.losers, weights, pairs.mu)
    assert float(loss) == pytest.approx((head_0 + head_1) / 2, abs=1e-6)
    one_head = bradley_terry_loss(scores[:, 0], pairs.winners, pairs.losers, pairs.weights, pairs.mu)
    assert float(one_head) == pytest.approx(head_0, abs=1e-6)  # (N,) scores: the one-model loss as before


def test_a_ranking_of_weight_zero_changes_nothing():
    scores = torch.tensor([0.3, -0.2, 1.0, 0.0])
    kept = RankedPrompt("q1", ["a", "b"], [[0], [1]])
    dropped = RankedPrompt("q2", ["c", "d"], [[1], [0]], weight=0.0)
    both, alone = pair_index([kept, dropped], "drop"), pair_index([kept], "drop")
    with_zero = bradley_terry_loss(scores, both.winners, both.losers, both.weights, both.mu)
    without = bradley_terry_loss(scores[:2], alone.winners, alone.losers, alone.weights, alone.mu)
    assert float(with_zero) == pytest.approx(float(without))


def test_the_ensemble_spread_and_calibration_are_read_from_the_member_scores():
    members = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0], [0.0, 4.0]])  # (N=4, E=2)
    data = [RankedPrompt("q1", ["a", "b"], [[0], [1]]), RankedPrompt("q2", ["c", "d"], [[1], [0]])]
    figures = evaluate_scores(members, data, "drop")
    stds = [math.sqrt(2), 0.0, 0.0, math.sqrt(8)]  # each completion's std over the two heads
    assert figures["spread"] == pytest.approx(sum(stds) / 4, abs=1e-6)
    # q1: a (mean 2) beat b (mean 0), predicted mean(σ(1), σ(3)) = 0.84; q2: d beat c, both mean 2,
    # and the heads split: mean(σ(2), σ(-2)) = 0.5 that c (first in display order) wins.
    p1 = (1 / (1 + math.exp(-1)) + 1 / (1 + math.exp(-3))) / 2
    bins = {round(b["bin"][0], 1): b for b in figures["calibration"]}
    assert bins[0.8] == {"bin": [0.8, 1.0], "predicted": pytest.approx(p1), "observed": 1.0, "pairs": 1}
    assert bins[0.4] == {"bin": [0.4, 0.6], "predicted": pytest.approx(0.5), "observed": 0.0, "pairs": 1}
    assert figures["accuracy"] == 0.5  # q2's tie in the mean scores is not a win
    assert evaluate_scores(members[:, :1], data, "drop")["spread"] == 0.0


def test_bootstrap_counts_are_ones_for_one_head_and_seeded_poisson_draws_for_several():
    assert bootstrap_counts(5, 1, seed=0).tolist() == [[1.0]] * 5
    counts = bootstrap_counts(400, 4, seed=7)
    assert torch.equal(counts, bootstrap_counts(400, 4, seed=7))
    assert counts.mean().item() == pytest.approx(1.0, abs=0.1) and not torch.equal(counts[:, 0], counts[:, 1])


def test_early_stopping_keeps_the_epoch_with_the_lowest_held_out_loss(tiny_folder):
    # The held-out labels are the opposite of the training labels: every epoch of training makes
    # the held-out loss worse, so the best epoch is the first and training stops after `patience`.
    config = RewardModelConfig(**FAST, epochs=6, patience=2, trunk="frozen")
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    train = synthetic(48, seed=1)
    heldout = [RankedPrompt(i.prompt, i.completions, i.order[::-1], i.labeler) for i in synthetic(16, seed=2)]
    logged = []
    result = train_reward_model(model, tokenizer, train, config, log=logged.append, heldout=heldout)
    by_epoch = [m["heldout_loss"] for m in logged if "heldout_loss" in m]
    assert len(by_epoch) == 3 and by_epoch[0] == min(by_epoch) < by_epoch[-1]  # stopped after 2 worse epochs
    assert result["best_epoch"] == 0
    assert evaluate(model, tokenizer, heldout, config)["loss"] == pytest.approx(by_epoch[0], abs=1e-5)


def test_a_frozen_trunk_trains_the_heads_only_and_its_features_give_the_models_scores(tiny_folder):
    config = RewardModelConfig(**FAST, epochs=3, heads=3, head_lr=1e-2, trunk="frozen")
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    trunk = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.head.weight.detach().clone()
    train, heldout = synthetic(160, seed=1), synthetic(40, seed=2)
    features = completion_features(model, tokenizer, heldout, config)  # (N, H)
    assert torch.allclose(model.members(features), member_scores(model, tokenizer, heldout, config), atol=1e-5)
    train_reward_model(model, tokenizer, train, config, heldout=heldout)
    assert all(torch.equal(v, trunk[k]) for k, v in model.backbone.state_dict().items())
    assert not torch.equal(model.head.weight, head) and model.head.weight.shape[0] == 3
    learnable = [RankedPrompt(i.prompt, i.completions, [i.order[0] + i.order[1], i.order[2]]) for i in heldout]
    figures = evaluate(model, tokenizer, learnable, config)
    assert figures["accuracy"] >= 0.8 and figures["spread"] > 0


def test_a_mean_pooling_model_reads_the_mean_of_a_middle_layer_and_keeps_it_through_a_save(tiny_folder, tmp_path):
    config = RewardModelConfig(**FAST, pooling="mean", depth=0.5, heads=2)
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    assert model.layer == model.backbone.config.num_hidden_layers // 2
    prompt, completion = "Why is the sky blue?", "Because of Rayleigh scattering."  # short of 256: nothing cut
    prompt_ids, completion_ids = encode_parts(tokenizer, prompt, completion, 256)
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        layer = model.backbone(input_ids=ids, output_hidden_states=True).hidden_states[model.layer]  # (1, T, H)
        expected = model.members(layer[0, len(prompt_ids) :].mean(dim=0)).mean()  # the completion's tokens only
    assert float(score_pairs(model, tokenizer, [(prompt, completion)], 256, normalised=False)) == pytest.approx(
        float(expected), abs=1e-4
    )
    save_reward_model(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    assert (loaded.pooling, loaded.layer, loaded.head.out_features) == ("mean", model.layer, 2)
    assert score_pairs(loaded, tokenizer, [(prompt, completion)], 64).tolist() == pytest.approx(
        score_pairs(model, tokenizer, [(prompt, completion)], 64).tolist(), abs=1e-5
    )


def test_standardised_heads_read_each_feature_in_its_own_units_and_keep_them_through_a_save(tiny_folder, tmp_path):
    config = RewardModelConfig(**FAST, epochs=2, heads=2, head_lr=1e-2, trunk="frozen", standardise=True)
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    train = synthetic(40, seed=1)
    features = completion_features(model, tokenizer, train, config)  # (N, H)
    train_reward_model(model, tokenizer, train, config)
    standard = (features - features.mean(dim=0)) / features.std(dim=0)  # (N, H)
    assert torch.allclose(model.members(features), model.head(standard), atol=1e-4)
    save_reward_model(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    assert torch.equal(loaded.feature_shift, model.feature_shift) and torch.equal(
        loaded.feature_scale, model.feature_scale
    )
    shift = loaded.feature_shift.clone()
    train_reward_model(loaded, tokenizer, synthetic(40, seed=3), config)  # a warm start keeps its statistics
    assert torch.equal(loaded.feature_shift, shift)


@pytest.mark.parametrize(
    ("override", "message"),
    [({"trunk": "frozn"}, "trunk must be one of 'full', 'frozen'"), ({"depth": 0}, "depth is a share"),
     ({"heads": 0}, "heads and epochs"), ({"pooling": "max"}, "pooling must be one of")],
)  # fmt: skip
def test_a_config_value_outside_its_choices_is_refused_with_its_name(override, message):
    with pytest.raises(ValueError, match=message):
        RewardModelConfig(**override)


def test_a_lora_trunk_trains_adapters_and_heads_then_saves_a_plain_trunk(tiny_folder, tmp_path):
    config = RewardModelConfig(**{**FAST, "lr": 1e-2}, epochs=3, heads=2, head_lr=1e-2, trunk="lora", lora_rank=4)
    model, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    train, heldout = synthetic(160, seed=1), synthetic(40, seed=2)
    train_reward_model(model, tokenizer, train, config)
    after = model.backbone.state_dict()
    assert after.keys() == before.keys()  # merged: no adapter left
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # the linear layers moved, the norms and embeddings not
    learnable = [RankedPrompt(i.prompt, i.completions, [i.order[0] + i.order[1], i.order[2]]) for i in heldout]
    assert evaluate(model, tokenizer, learnable, config)["accuracy"] >= 0.8
    save_reward_model(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    pairs = [(item.prompt, item.completions[0]) for item in heldout[:4]]
    assert score_pairs(loaded, tokenizer, pairs, 64).tolist() == pytest.approx(
        score_pairs(model, tokenizer, pairs, 64).tolist(), abs=1e-5
    )
