"""Gradient checkpointing (layers recomputed in the backward) in SFT, DPO and RLOO."""

import pytest
import torch

from training.core.config import DPOConfig, PPOConfig, SFTConfig
from training.core.dpo import train_dpo
from training.core.loading import load_model
from training.core.ppo import PPOTrainer
from training.core.rankings import RankedPrompt
from training.core.sft import train_sft


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
                # Scores that differ within a prompt's samples: constant ones would leave every advantage 0 and
                # the gradient float noise, which Adam scales up to full-size steps either way.
                scores = lambda p, c: torch.tensor([len(text) + 0.5 * i for i, text in enumerate(c)])  # noqa: E731
                trainer = PPOTrainer(model, tokenizer, None, scores, config)
                trainer.step(["Pick 0", "Pick 1"])
                model = trainer.trained_policy()
        trained.append(dict(model.named_parameters()))
        saved.append(kept[0])
    assert saved[1] < 0.7 * saved[0], saved
    for name, weight in trained[0].items():
        assert torch.allclose(weight, trained[1][name], atol=1e-5), name
