"""An RL step of a policy against a reward model, PPO (with a critic) or RLOO (without), into a new
candidate PolicyVersion."""

from django.conf import settings

from training.core.config import PPOConfig
from training.core.generation import context_budget, fit_prompts
from training.core.loading import load_model
from training.core.ppo import PPOTrainer
from training.core.reward_model import load_reward_model, reward_model_scorer
from training.datasets import training_prompts
from training.executors.placement import placed
from training.executors.policies import load_kl_reference, probe_policy, register_policy, save_policy
from training.models import TrainingRun
from training.runs import Reporter

RM_MAX_LENGTH = 512  # tokens of prompt + completion the reward model reads when scoring rollouts


def train_policy_with_rl(run: TrainingRun, report: Reporter) -> None:
    """Trains the policy against the RM with KL to its reference (the last SFT policy, or the base),
    stores it as a candidate version, and promotes it when the project's rule is automatic."""
    config = PPOConfig(**run.config)
    report.phase(0.0, "loading the policy, its reference and the reward model")
    placement = placed(run)
    # with LoRA only the adapters train: the base is frozen, held in the compute dtype
    policy, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE, placement, not config.lora_rank)
    rm_folder = settings.MODEL_STORE / run.reward_model.checkpoint
    rm, _ = load_reward_model(rm_folder, placement)  # frozen, in the compute dtype
    critic = load_reward_model(rm_folder, placement, "full")[0] if config.advantage_estimator == "gae" else None
    scorer = reward_model_scorer(rm, tokenizer, RM_MAX_LENGTH)
    trainer = PPOTrainer(policy, tokenizer, critic, scorer, config, reference=load_kl_reference(run, placement),
                         placement=placement)  # fmt: skip
    # a conversation too long for the context loses its oldest exchanges, as when it was sampled
    prompts = fit_prompts(tokenizer, training_prompts(run.project), context_budget(policy, config))
    trainer.train(prompts, log=report.steps(0.0, 0.95))
    if not report.main:
        return  # the other training processes' part ends with training: rank 0 saves and registers
    report.phase(0.93, "saving the policy")
    checkpoint = save_policy(run, trainer.trained_policy(), tokenizer)
    del trainer, policy, critic  # the probe loads the saved policy as a worker will sample it
    report.phase(0.96, "the gate's probe: the new policy's own answers")
    probe = probe_policy(run, checkpoint, placement, rm)
    version = register_policy(run, checkpoint, run.reward_model, probe=probe)
    report(1.0, policy_version=version.version, promoted=version.status == version.Status.ACTIVE)
