"""KL of a project's active policy to its base on prompts: the mean over the policy's own samples
(the project's temperature, 64 new tokens) of Σ log π − log π_base, as the RL step logs it."""

import torch
from django.conf import settings

from training.core.config import PPOConfig
from training.core.loading import load_model
from training.core.ppo import PPOTrainer
from training.models import PolicyVersion
from training.services import active_policy


def kl_to_base(project, prompts: list[str], max_new_tokens: int = 64) -> float:
    policy, tokenizer = load_model(active_policy(project).checkpoint, settings.MODEL_STORE)
    base, _ = load_model(PolicyVersion.objects.get(project=project, version=0).checkpoint, settings.MODEL_STORE)
    config = PPOConfig.rloo(
        temperature=project.recipe.temperature, max_new_tokens=max_new_tokens, batch_prompts=len(prompts)
    )
    zero = lambda prompts, completions: torch.zeros(len(completions))  # noqa: E731 - no reward model needed
    trainer = PPOTrainer(policy, tokenizer, None, zero, config, reference=base)
    batch = trainer.rollout(prompts)
    return float(((batch.logprobs - batch.ref_logprobs) * batch.response_mask).sum(dim=1).mean())
