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
from training.runs import ProgressLine, carried_out, is_main_process, record_progress, start_run


def execute_sft_run(run_id: int, on_progress: ProgressLine | None = None) -> TrainingRun | None:
    run = start_run(run_id)
    if run is None:
        return None
    with carried_out(run):
        config = SFTConfig(**run.config)
        record_progress(run, 0.0, phase="reading demonstrations and loading the policy", on_progress=on_progress)
        examples = sft_examples(run.project, config.include_top_ranked)
        train, heldout = split_by_prompt(examples, config.heldout_fraction, "demonstration")
        placement = placed(run)
        # with LoRA only the adapters train: the base is frozen, held in the compute dtype
        policy, tokenizer = load_model(run.policy.checkpoint, settings.MODEL_STORE, placement, not config.lora_rank)

        def log_step(figures: dict) -> None:
            phase = f"training step {figures['step']} of {figures['steps']}"
            record_progress(run, 0.9 * figures["step"] / figures["steps"], phase=phase, **figures,
                            on_progress=on_progress)  # fmt: skip

        trained, figures = train_sft(policy, tokenizer, train, heldout, config, log=log_step, placement=placement)
        if not is_main_process():
            return run  # the other training processes' part ends with training: rank 0 saves and registers
        record_progress(run, 0.9, phase="saving the policy", on_progress=on_progress)
        version = register_policy(run, save_policy(run, trained, tokenizer), anchor=True)
        record_progress(run, 1.0, policy_version=version.version, demonstrations=sum(len(t.completions) for t in train),
                        heldout_loss=figures.get("best_heldout_loss"), on_progress=on_progress)  # fmt: skip
    return run
