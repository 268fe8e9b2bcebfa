"""One frozen config per algorithm; stored as JSON on the run row (`dataclasses.asdict`)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RewardModelConfig:
    lr: float = 9e-6
    """Peak learning rate, reached after warm-up [InstructGPT: 9e-6]."""
    final_lr: float = 3e-6
    """Learning rate at the end of the cosine decay."""
    warmup_ratio: float = 0.03
    """Share of the optimiser steps spent warming up linearly from 0."""
    epochs: int = 1
    """Passes over the training rankings [InstructGPT: 1; more overfits]."""
    batch_prompts: int = 8
    """Ranked prompts per optimiser step; each brings its K completions and C(K,2) pairs."""
    max_length: int = 512
    """Tokens per prompt + completion + EOS; longer ones lose the start of the prompt."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping."""
    tie_mode: str = "drop"
    """'drop': pairs within a tie group are left out; 'half': they count with target 0.5."""
    head_init_std: float | None = None
    """Std of the scalar head's initial weights; None means 1/sqrt(hidden_size + 1)."""
    heldout_fraction: float = 0.1
    """Share of prompts (never of pairs) kept out of training to measure accuracy."""
    seed: int = 0
    """Seeds the head's initialisation and the order of the batches."""
    dtype: str = "float32"
    """'float32' or 'bfloat16' for the weights and the forward pass."""
