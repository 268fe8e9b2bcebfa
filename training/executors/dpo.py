"""DPO of the active policy straight from a project's rankings, into a new candidate PolicyVersion."""

from django.conf import settings

from labeling.quality import labeler_weights
from training.core.config import DPOConfig
from training.core.dpo import train_dpo
from training.core.loading import load_model
from training.datasets import ranked_prompts, split_by_prompt
from training.executors.placement import placed
from training.executors.policies import load_kl_reference, probe_policy, register_policy, save_policy
from training.models import TrainingRun
from training.runs import Reporter


def train_policy_with_dpo(run: TrainingRun, report: Reporter) -> None:
    """Trains on the usable rankings up to the run's `through_ranking`, KL-anchored to the policy's
    reference (the last SFT policy, or the base), and registers the result like an RL step's."""
    config = DPOConfig(**run.config)
    report.phase(0.0, "reading rankings and loading the policy")
    weights = labeler_weights(run.project, people=config.labeler_weights)
    data = ranked_prompts(run.project, run.through_ranking_id, weights)
    train, heldout = split_by_prompt(data, config.heldout_fraction)
    placement = placed(run)
    # with LoRA only the adapters train: the base is frozen, held in the compute dtype
    policy, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE, placement, not config.lora_rank)
    report.phase(0.02, "reference log-probs of every completion")
    # the reference is not kept here: train_dpo frees it once it has read its log-probs
    trained, figures = train_dpo(policy, tokenizer, train, heldout, config, log=report.steps(0.05, 0.9),
                                 reference=load_kl_reference(run, placement), placement=placement)  # fmt: skip
    if not report.main:
        return  # the other training processes' part ends with training: rank 0 saves and registers
    report.phase(0.9, "saving the policy")
    checkpoint = save_policy(run, trained, tokenizer)
    del trained, policy  # the probe loads the saved policy as a worker will sample it
    report.phase(0.94, "the gate's probe: the new policy's own answers")
    probe = probe_policy(run, checkpoint, placement, reward_model=None)
    version = register_policy(run, checkpoint, probe=probe)
    report(1.0, policy_version=version.version, heldout_accuracy=figures.get("heldout_accuracy"),
           promoted=version.status == version.Status.ACTIVE)  # fmt: skip
