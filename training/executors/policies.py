"""What every run that trains the policy shares: the model KL is measured to, a probe of the new
policy's own answers, writing the new checkpoint, and registering it as a candidate version
(promoted when the recipe's rule says so, through the gate for a policy trained from rankings).
A version row is created only after its files are complete, and only while the run still runs."""

from pathlib import Path
from statistics import fmean

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Q
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.models import ComparisonTask, Completion, Project
from training.configs import reward_model_config, sampling_config
from training.core.checkpoints import write_once
from training.core.devices import Placement
from training.core.generation import context_budget, fit_prompts, sample
from training.core.loading import load_model
from training.core.reward_model import RewardModel
from training.core.selection import group_members, task_uncertainty
from training.datasets import training_prompts
from training.gate import do_promote_through_gate
from training.models import PolicyVersion, Recipe, RewardModelVersion, TrainingRun
from training.runs import check_still_running, checkpoint_name
from training.services import do_promote_policy

PROBE_PROMPTS = 8  # training prompts the new policy answers K times each for the gate's probe


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


def probe_policy(run: TrainingRun, checkpoint: Path, placement: Placement, reward_model: RewardModel | None) -> dict:
    """The new policy's own answers to a few training prompts (K each, the recipe's sampling), as a
    worker will sample it (the saved checkpoint, frozen in the compute dtype), and its parent's
    comparisons and its KL reference's, in the figures the promotion gate reads: mean length and EOS
    rate of each, and the reward model's ensemble disagreement on the new answers (an ensemble only)."""
    project = run.project
    model, tokenizer = load_model(str(checkpoint), settings.MODEL_STORE, placement, trainable=False)
    sampling = sampling_config(project.recipe, seed=run.pk)
    prompts = fit_prompts(tokenizer, training_prompts(project)[:PROBE_PROMPTS], context_budget(model, sampling))
    groups = sample(model, tokenizer, prompts, project.k, sampling)
    answers = [s for group in groups for s in group]
    reference = kl_reference(run.policy)
    parents = comparison_figures(run.policy)
    references = parents if reference.pk == run.policy_id else comparison_figures(reference)
    figures = {
        "prompts": len(prompts),
        "answers": len(answers),
        "mean_length": fmean(s.token_count for s in answers) if answers else None,
        "eos_rate": fmean(s.finish_reason == "eos" for s in answers) if answers else None,
        **{f"parent_{name}": value for name, value in parents.items()},
        "reference": reference.version,
        **{f"reference_{name}": value for name, value in references.items()},
    }
    if reward_model is not None and reward_model.head.out_features > 1 and answers:
        config = reward_model_config(project.recipe)
        members = group_members(reward_model, tokenizer, [(p, [s.text for s in g]) for p, g in zip(prompts, groups,
                                strict=True)], config)  # fmt: skip
        figures["disagreement"] = fmean(task_uncertainty(m) for m in members)
    return figures


def comparison_figures(policy: PolicyVersion) -> dict:
    """How many answers the version wrote for training comparisons, their mean length and EOS rate
    (None where it wrote none)."""
    found = Completion.objects.filter(policy_version=policy, tasks__kind=ComparisonTask.Kind.TRAIN).aggregate(
        n=Count("pk", distinct=True), mean_length=Avg("token_count"),
        eos=Count("pk", filter=Q(finish_reason=Completion.FinishReason.EOS), distinct=True),
    )  # fmt: skip
    return {
        "answers": found["n"],
        "mean_length": found["mean_length"] if found["n"] else None,
        "eos_rate": found["eos"] / found["n"] if found["n"] else None,
    }


def save_policy(run: TrainingRun, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Writes the trained policy into the model store, all or nothing; returns its relative path."""
    checkpoint = Path("policies") / f"project-{run.project_id}" / checkpoint_name(run)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    write_once(settings.MODEL_STORE / checkpoint, write)
    return checkpoint


def register_policy(
    run: TrainingRun,
    checkpoint: Path,
    reward_model: RewardModelVersion | None = None,
    anchor: bool = False,
    probe: dict | None = None,
) -> PolicyVersion:
    """The next version number of the run's project, as a candidate, then promoted when automatic:
    a policy trained from rankings (one with a `probe`) through the gate, when the recipe keeps it.
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
            probe=probe or {},
        )
        if anchor:
            version.kl_reference = version
            version.save(update_fields=["kl_reference"])
        recipe = project.recipe
        if recipe.promotion == Recipe.Promotion.AUTOMATIC and recipe.promotion_gate and probe is not None:
            do_promote_through_gate(version)
        elif recipe.promotion == Recipe.Promotion.AUTOMATIC:
            do_promote_policy(version)
    return version
