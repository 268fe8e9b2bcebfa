"""A project's settings as the training core's config dataclasses, and their validation.

The web process imports this module (the project form validates with it), so it stays free of
torch: `training.core.config` and `training.core.references` are plain Python.
"""

from django.conf import settings
from django.core.exceptions import ValidationError

from labeling.models import Project
from training.core.config import DPOConfig, PPOConfig, RewardModelConfig, SamplingConfig, SFTConfig
from training.core.references import ModelLoadError, check_reference


def reward_model_config(project: Project) -> RewardModelConfig:
    """The defaults with the project's overrides; TypeError names a bad key."""
    return RewardModelConfig(**_overrides(project.reward_model_config))


def rl_config(project: Project, algorithm: str | None = None, **extra) -> PPOConfig:
    """An RL step's config: the defaults of `algorithm` ('ppo' or 'rloo'; the project's when None,
    'rloo' for a DPO project), the project's sampling settings, its RL overrides, then `extra`."""
    algorithm = algorithm or (project.algorithm if project.algorithm != Project.Algorithm.DPO else "rloo")
    sampling = {"temperature": project.temperature, "top_p": project.top_p}
    build = PPOConfig.rloo if algorithm == Project.Algorithm.RLOO else PPOConfig
    return build(**{**sampling, **_overrides(project.ppo_config), **extra})


def dpo_config(project: Project) -> DPOConfig:
    return DPOConfig(**_overrides(project.dpo_config))


def sft_config(project: Project) -> SFTConfig:
    return SFTConfig(**_overrides(project.sft_config))


def sampling_config(project: Project, seed: int) -> SamplingConfig:
    """How the project samples comparisons: its temperature, top-p, top-k and length, and a seed."""
    return SamplingConfig(
        temperature=project.temperature,
        top_p=project.top_p,
        top_k=project.top_k,
        max_new_tokens=project.max_new_tokens,
        seed=seed,
    )


def check_project_settings(project: Project) -> None:
    """Raises ValidationError naming the field when the base model cannot name a model, a config
    override is not one the algorithm has, or uncertainty selection has no ensemble to ask."""
    try:
        check_reference(project.base_model, settings.MODEL_STORE)
    except ModelLoadError as exc:
        raise ValidationError({"base_model": str(exc)}) from None
    configs = (("reward_model_config", reward_model_config), ("ppo_config", rl_config), ("dpo_config", dpo_config),
               ("sft_config", sft_config))  # fmt: skip
    for field, build in configs:
        try:
            build(project)
        except (TypeError, ValueError) as exc:
            raise ValidationError({field: str(exc)}) from None
    if project.selection == Project.Selection.UNCERTAINTY and reward_model_config(project).heads < 2:
        message = 'Uncertainty selection needs an ensemble: set "heads" to 2 or more in the reward-model config.'
        raise ValidationError({"selection": message})
    if (project.selection == Project.Selection.UNCERTAINTY and project.algorithm == Project.Algorithm.DPO
            and not project.dpo_trains_reward_model):  # fmt: skip
        message = (
            "Uncertainty selection reads each round's reward model: let DPO rounds train one, or select at random."
        )
        raise ValidationError({"dpo_trains_reward_model": message})


def _overrides(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError('Overrides must be a JSON object, like {"lr": 1e-5}.')
    return value
