"""Gradient checkpointing: each transformer layer's activations recomputed in the backward instead
of kept, so a training forward holds one layer's activations at a time, for about a third more
compute. transformers' own switch acts only in train mode and turns the KV cache off; ours trains
in eval mode (no dropout), so the layers are wrapped here, and the callers that share a prompt's
cache between its completions forward each completion whole instead (`is_recomputed`)."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def recompute_layers(model: nn.Module) -> int:
    """Wraps every decoder layer of `model` (its LoRA-wrapped form included) so that, when a
    gradient is being recorded, its forward is recomputed in the backward, and turns the model's
    default KV cache off: a layer recomputed with a cache would append its keys to it twice.
    (`generate` still caches; it records no gradient.) Returns how many layers."""
    for module in model.modules():
        if hasattr(getattr(module, "config", None), "use_cache"):
            module.config.use_cache = False
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        if getattr(layer, "_recomputed", False):
            continue
        forward = layer.forward

        def recomputed(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled() and kwargs.get("past_key_values") is None:
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        layer.forward, layer._recomputed = recomputed, True
    return len(layers)


def is_recomputed(model: nn.Module) -> bool:
    return any(getattr(m, "_recomputed", False) for m in model.modules())
