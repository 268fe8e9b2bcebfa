"""Supervised fine-tuning of the active policy on a project's demonstrations, into a new candidate
PolicyVersion that later rounds measure KL to."""

from django.conf import settings

from training.core.config import SFTConfig
from training.core.loading import load_model
from training.core.sft import train_sft
from training.datasets import sft_examples, split_by_prompt
from training.executors.placement import placed
from training.executors.policies import register_policy, save_policy
from training.models import TrainingRun
from training.runs import Reporter


def fine_tune_policy(run: TrainingRun, report: Reporter) -> None:
    """SFT of the run's policy on the demonstrations (and top-ranked completions, if the config says
    so), registered as a new version that is its own KL reference."""
    config = SFTConfig(**run.config)
    report.phase(0.0, "reading demonstrations and loading the policy")
    examples = sft_examples(run.project, config.include_top_ranked)
    train, heldout = split_by_prompt(examples, config.heldout_fraction, "demonstration")
    placement = placed(run)
    # with LoRA only the adapters train: the base is frozen, held in the compute dtype
    policy, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE, placement, not config.lora_rank)
    trained, figures = train_sft(policy, tokenizer, train, heldout, config, log=report.steps(0.0, 0.9),
                                 placement=placement)  # fmt: skip
    if not report.main:
        return  # the other training processes' part ends with training: rank 0 saves and registers
    report.phase(0.9, "saving the policy")
    version = register_policy(run, save_policy(run, trained, tokenizer), anchor=True)
    report(1.0, policy_version=version.version, demonstrations=sum(len(t.completions) for t in train),
           heldout_loss=figures.get("best_heldout_loss"))  # fmt: skip
