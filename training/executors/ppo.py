"""A PPO round of a policy against a reward model, into a new candidate PolicyVersion."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from labeling.models import Project
from training.core.checkpoints import write_once
from training.core.config import PPOConfig
from training.core.loading import load_model
from training.core.ppo import PPOTrainer
from training.core.reward_model import load_reward_model, reward_model_scorer
from training.datasets import training_prompts
from training.models import PolicyVersion, TrainingRun
from training.runs import ProgressLine, carried_out, check_still_running, checkpoint_name, record_progress, start_run
from training.services import do_promote_policy

RM_MAX_LENGTH = 512  # tokens of prompt + completion the reward model reads when scoring rollouts


def execute_ppo_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    """Trains the policy with PPO against the RM, stores it as a candidate version, and promotes it
    when the project's rule is automatic. The version row is created after its files are complete."""
    run = start_run(run_id)
    if run is None:
        return None
    with carried_out(run):
        project, config = run.project, PPOConfig(**run.config)
        policy, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE)
        rm, _ = load_reward_model(settings.MODEL_STORE / run.reward_model.checkpoint)
        critic, _ = load_reward_model(settings.MODEL_STORE / run.reward_model.checkpoint)  # initialised from the RM
        scorer = reward_model_scorer(rm.requires_grad_(False), tokenizer, RM_MAX_LENGTH)
        trainer = PPOTrainer(policy, tokenizer, critic, scorer, config)

        def log_step(figures: dict) -> None:
            record_progress(run, 0.95 * figures["step"] / figures["steps"], **figures, on_progress=on_progress)

        trainer.train(training_prompts(project), log=log_step)
        trained = trainer.trained_policy()
        checkpoint = Path("policies") / f"project-{project.pk}" / checkpoint_name(run)

        def write(folder: Path) -> None:
            trained.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        write_once(settings.MODEL_STORE / checkpoint, write)
        version = _register(run, checkpoint)
        if project.promotion == Project.Promotion.AUTOMATIC:
            do_promote_policy(version)
        record_progress(run, 1.0, policy_version=version.version, on_progress=on_progress)
    return run


def _register(run: TrainingRun, checkpoint: Path) -> PolicyVersion:
    with transaction.atomic():
        check_still_running(run)
        Project.objects.select_for_update().get(pk=run.project_id)
        latest = PolicyVersion.objects.filter(project_id=run.project_id).order_by("-version").first()
        return PolicyVersion.objects.create(
            project_id=run.project_id,
            version=latest.version + 1,
            parent=run.policy,
            checkpoint=str(checkpoint),
            created_by_run=run,
            reward_model=run.reward_model,
            status=PolicyVersion.Status.CANDIDATE,
        )
