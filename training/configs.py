"""A project's recipe as the training core's config dataclasses, and its validation.

The web process imports this module (the recipe form validates with it), so it stays free of
torch: `training.core.config` and `training.core.references` are plain Python.
"""

from django.conf import settings
from django.core.exceptions import ValidationError

from labeling.models import Project
from training.core.config import DPOConfig, PPOConfig, RewardModelConfig, SamplingConfig, SFTConfig
from training.core.references import ModelLoadError, check_reference
from training.models import Recipe


def reward_model_config(recipe: Recipe) -> RewardModelConfig:
    """The defaults with the recipe's overrides; TypeError names a bad key."""
    return RewardModelConfig(**_overrides(recipe.reward_model_config))


def rl_config(recipe: Recipe, algorithm: str | None = None, **extra) -> PPOConfig:
    """An RL step's config: the defaults of `algorithm` ('ppo' or 'rloo'; the recipe's when None,
    'rloo' for a DPO recipe), the recipe's sampling settings, its RL overrides, then `extra`."""
    algorithm = algorithm or (recipe.algorithm if recipe.algorithm != Recipe.Algorithm.DPO else "rloo")
    sampling = {"temperature": recipe.temperature, "top_p": recipe.top_p}
    build = PPOConfig.rloo if algorithm == Recipe.Algorithm.RLOO else PPOConfig
    return build(**{**sampling, **_overrides(recipe.ppo_config), **extra})


def dpo_config(recipe: Recipe) -> DPOConfig:
    return DPOConfig(**_overrides(recipe.dpo_config))


def sft_config(recipe: Recipe) -> SFTConfig:
    return SFTConfig(**_overrides(recipe.sft_config))


def sampling_config(recipe: Recipe, seed: int) -> SamplingConfig:
    """How the project samples comparisons: its temperature, top-p, top-k and length, and a seed."""
    return SamplingConfig(
        temperature=recipe.temperature,
        top_p=recipe.top_p,
        top_k=recipe.top_k,
        max_new_tokens=recipe.max_new_tokens,
        seed=seed,
    )


def check_recipe(recipe: Recipe) -> None:
    """Raises ValidationError naming the field when the base model cannot name a model, a config
    override is not one the algorithm has, or the project's uncertainty selection has no ensemble
    to ask. `recipe.project` may be unsaved (a project being created)."""
    try:
        check_reference(recipe.base_model, settings.MODEL_STORE)
    except ModelLoadError as exc:
        raise ValidationError({"base_model": str(exc)}) from None
    configs = (("reward_model_config", reward_model_config), ("ppo_config", rl_config), ("dpo_config", dpo_config),
               ("sft_config", sft_config))  # fmt: skip
    for field, build in configs:
        try:
            build(recipe)
        except (TypeError, ValueError) as exc:
            raise ValidationError({field: str(exc)}) from None
    if recipe.project.selection != Project.Selection.UNCERTAINTY:
        return
    if reward_model_config(recipe).heads < 2:
        message = 'Uncertainty selection needs an ensemble: set "heads" to 2 or more in the reward-model config.'
        raise ValidationError({"reward_model_config": message})
    if recipe.algorithm == Recipe.Algorithm.DPO and not recipe.dpo_trains_reward_model:
        message = (
            "Uncertainty selection reads each round's reward model: let DPO rounds train one, or select at random."
        )
        raise ValidationError({"dpo_trains_reward_model": message})


def _overrides(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError('Overrides must be a JSON object, like {"lr": 1e-5}.')
    return value
