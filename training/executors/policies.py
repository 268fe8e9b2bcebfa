"""What every run that trains the policy shares: the model KL is measured to, writing the new
checkpoint, and registering it as a candidate version (promoted when the project's rule says so).
A version row is created only after its files are complete, and only while the run still runs."""

from pathlib import Path

from django.conf import settings
from django.db import transaction
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.models import Project
from training.core.checkpoints import write_once
from training.core.devices import Placement
from training.core.loading import load_model
from training.models import PolicyVersion, Recipe, RewardModelVersion, TrainingRun
from training.runs import check_still_running, checkpoint_name
from training.services import do_promote_policy


def kl_reference(policy: PolicyVersion) -> PolicyVersion:
    """The version KL is measured to when `policy` trains further: its last SFT ancestor, else the base."""
    return policy.kl_reference or PolicyVersion.objects.get(project_id=policy.project_id, version=0)


def load_kl_reference(run: TrainingRun, placement: Placement) -> PreTrainedModel | None:
    """The KL reference's weights, frozen in the compute dtype, when they are not the run's starting
    policy's; None when they are (the trainer then keeps the starting weights, or reads them before
    its first step)."""
    reference = kl_reference(run.policy)
    if reference.pk == run.policy_id:
        return None
    model, _ = load_model(reference.checkpoint, settings.MODEL_STORE, placement, trainable=False)
    return model


def save_policy(run: TrainingRun, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Writes the trained policy into the model store, all or nothing; returns its relative path."""
    checkpoint = Path("policies") / f"project-{run.project_id}" / checkpoint_name(run)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    write_once(settings.MODEL_STORE / checkpoint, write)
    return checkpoint


def register_policy(
    run: TrainingRun, checkpoint: Path, reward_model: RewardModelVersion | None = None, anchor: bool = False
) -> PolicyVersion:
    """The next version number of the run's project, as a candidate, then promoted when automatic.
    `anchor` (SFT) makes the new version its own KL reference; otherwise it inherits its parent's."""
    with transaction.atomic():
        check_still_running(run)
        project = Project.objects.select_for_update().get(pk=run.project_id)
        latest = PolicyVersion.objects.filter(project_id=run.project_id).order_by("-version").first()
        version = PolicyVersion.objects.create(
            project_id=run.project_id,
            version=latest.version + 1,
            parent=run.policy,
            checkpoint=str(checkpoint),
            created_by_run=run,
            reward_model=reward_model,
            kl_reference=None if anchor else run.policy.kl_reference,
            status=PolicyVersion.Status.CANDIDATE,
        )
        if anchor:
            version.kl_reference = version
            version.save(update_fields=["kl_reference"])
        if project.recipe.promotion == Recipe.Promotion.AUTOMATIC:
            do_promote_policy(version)
    return version
