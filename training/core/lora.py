"""Low-rank adapters (LoRA) on a model's linear layers, for the policy and the reward model's trunk."""

from transformers import PreTrainedModel


def with_lora(model: PreTrainedModel, rank: int) -> PreTrainedModel:
    """`model` with trainable low-rank adapters on every linear layer, its own weights frozen."""
    from peft import LoraConfig, get_peft_model  # only with LoRA: importing peft takes seconds

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear"))


def merged(model: PreTrainedModel, lora: bool) -> PreTrainedModel:
    """The trained policy as one plain model: LoRA adapters merged into float32 weights (a bfloat16
    base would round small adapter deltas away), saved and loaded as any checkpoint."""
    return model.float().merge_and_unload() if lora else model
