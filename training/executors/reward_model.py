"""Training a Bradley–Terry reward model on a project's rankings into a new RewardModelVersion."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from labeling.models import Project
from labeling.quality import labeler_weights
from training.core.checkpoints import write_once
from training.core.config import RewardModelConfig
from training.core.reward_model import (
    RewardModel,
    load_reward_model,
    new_reward_model,
    normalise,
    read_layer,
    save_reward_model,
)
from training.core.reward_training import evaluate, train_reward_model
from training.datasets import ranked_prompts, reference_completions, split_by_prompt
from training.executors.fresh_scores import score_fresh_rankings
from training.executors.placement import placed
from training.executors.selection import refresh_task_uncertainty
from training.models import RewardModelVersion, TrainingRun
from training.runs import Reporter, RunCancelled, check_still_running, checkpoint_name
from training.services import latest_reward_model


def train_reward_model_version(run: TrainingRun, report: Reporter) -> None:
    """Trains, evaluates on held-out prompts, normalises and stores a new RewardModelVersion.

    Warm-starts from the project's latest RM version when there is one, else from the policy's
    trunk. The row is created only after the checkpoint folder is complete.
    """
    project, config = run.project, RewardModelConfig(**run.config)
    report.phase(0.0, "reading rankings and loading the reward model")
    placement = placed(run)
    weights = labeler_weights(project, people=config.labeler_weights)
    data = ranked_prompts(project, run.through_ranking_id, weights)
    train, heldout = split_by_prompt(data, config.heldout_fraction)
    parent = latest_reward_model(project)
    if parent is not None:
        model, tokenizer = load_reward_model(settings.MODEL_STORE / parent.checkpoint, placement, config.trunk,
                                             config.dtype)  # fmt: skip
        if report.main:  # No ranking enters training unscored: the parent scores the fresh ones first.
            report.phase(0.02, f"scoring the fresh rankings with reward model v{parent.version}")
            score_fresh_rankings(parent, model, tokenizer, through=run.through_ranking_id)
    if parent is None or not same_architecture(model, config):
        model, tokenizer = new_reward_model(run.policy.checkpoint, settings.MODEL_STORE, config, placement)

    completions = sum(len(item.completions) for item in [*train, *heldout])
    report.phase(0.05, f"the frozen trunk's features of {completions} completions, then training" if config.trunk ==
                 "frozen" else f"training on {len(train)} ranked prompts")  # fmt: skip
    train_reward_model(model, tokenizer, train, config, log=report.steps(0.05, 0.9), heldout=heldout,
                       placement=placement)  # fmt: skip
    if not report.main:
        return  # the other training processes' part ends with training: rank 0 saves and registers
    with placement.autocast():  # a trained trunk is in float32: score it as it trained
        report.phase(0.9, f"scoring {len(train)} training and {len(heldout)} held-out ranked prompts")
        on_train = evaluate(model, tokenizer, train, config)
        on_heldout = evaluate(model, tokenizer, heldout, config) if heldout else {}
        report.phase(0.92, "the reference offset: the mean score of the reference completions")
        offset = normalise(model, tokenizer, reference_completions(project), config.max_length)
    report.phase(0.94, "saving the reward model")
    checkpoint = Path("reward_models") / f"project-{project.pk}" / checkpoint_name(run)
    write_once(settings.MODEL_STORE / checkpoint, lambda folder: save_reward_model(model, tokenizer, folder))
    version = _register(run, parent, checkpoint, len(data), on_train, on_heldout, offset)
    if project.selection == Project.Selection.UNCERTAINTY and model.head.out_features > 1:
        with placement.autocast():
            _refresh_task_scores(project, model, tokenizer, report)
    report(1.0, reward_model_version=version.version, heldout_accuracy=on_heldout.get("accuracy"))


def same_architecture(model: RewardModel, config: RewardModelConfig) -> bool:
    """Whether a loaded reward model has the heads, pooling and layer the config asks for: a new
    version warm-starts from the last only then, else it starts afresh from the policy's trunk."""
    layer = read_layer(config, model.trunk_layers)
    return (model.head.out_features, model.pooling, model.layer) == (config.heads, config.pooling, layer)


def _refresh_task_scores(project: Project, model: RewardModel, tokenizer, report: Reporter) -> None:
    """The new version's scores of the open training tasks, for uncertainty selection. The version
    is registered already: a failure here is noted on the run, and the old scores stay."""

    def moved(done: int, total: int) -> None:
        report.phase(0.95 + 0.05 * done / total, "scoring open tasks")

    try:
        scored = refresh_task_uncertainty(project, model, tokenizer, on_batch=moved)
    except RunCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - the version stands; say why the scores are old
        report.note(f"Open tasks were not rescored: {exc}")
        return
    report.note(f"Rescored {scored} open training tasks for selection.")


def _register(run, parent, checkpoint, rankings, on_train, on_heldout, offset) -> RewardModelVersion:
    with transaction.atomic():
        check_still_running(run)
        Project.objects.select_for_update().get(pk=run.project_id)
        latest = latest_reward_model(run.project_id)
        through = run.through_ranking
        return RewardModelVersion.objects.create(
            project_id=run.project_id,
            version=(latest.version + 1) if latest else 1,
            parent=parent,
            checkpoint=str(checkpoint),
            created_by_run=run,
            accuracy=on_train.get("accuracy"),
            heldout_accuracy=on_heldout.get("accuracy"),
            tie_rate=on_train.get("tie_rate"),
            metrics={"train": on_train, "heldout": on_heldout, "rankings": rankings},
            trained_through_ranking_id=through.pk,
            trained_through_time=through.created_at,
            rankings_count=rankings,
            normalisation={"offset": offset},
        )
