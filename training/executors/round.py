"""A full round: [SFT →] reward model → the project's algorithm → promotion → new comparisons, each
step its own run."""

from collections.abc import Callable

from labeling.models import Project
from training.datasets import new_demonstrations_since_last_sft
from training.models import PolicyVersion, Recipe, TrainingRun
from training.runs import Reporter
from training.services import create_run

Kind = TrainingRun.Kind
ROUND_SAMPLE_PROMPTS = 50  # comparisons sampled from the new policy at the end of a round
POLICY_STEP = {Recipe.Algorithm.PPO: Kind.PPO, Recipe.Algorithm.RLOO: Kind.RLOO, Recipe.Algorithm.DPO: Kind.DPO}
WEIGHT = {Kind.SFT: 2, Kind.RM: 2, Kind.PPO: 5, Kind.RLOO: 5, Kind.DPO: 5, Kind.GENERATE: 2}  # share of the bar


class RoundStepFailed(Exception):
    """A step of a round did not succeed; the round stops there."""


def round_steps(project: Project) -> list[Kind]:
    """SFT when the project's threshold of new demonstrations has arrived; the reward model (which
    a DPO round trains too unless the recipe turns it off: fresh-label accuracy and uncertainty
    selection read it); the policy step of the recipe's algorithm; then new comparisons from the
    new policy."""
    recipe = project.recipe
    sft_due = recipe.sft_threshold and new_demonstrations_since_last_sft(project) >= recipe.sft_threshold
    reward_model = recipe.algorithm != Recipe.Algorithm.DPO or recipe.dpo_trains_reward_model
    return [*([Kind.SFT] if sft_due else []), *([Kind.RM] if reward_model else []), POLICY_STEP[recipe.algorithm],
            Kind.GENERATE]  # fmt: skip


def carry_out_round(round_: TrainingRun, report: Reporter, carry_out_step: Callable[[TrainingRun], None]) -> None:
    """Each step its own run, a child of the round, carried out by `carry_out_step` one after the
    other. A policy step starts from the version the step before it made (an SFT policy waiting for
    manual promotion). The new comparisons come from the policy the round made, promoted or kept
    back by the gate: rankings of a kept-back candidate's answers are the fresh labels that tell
    whether the reward model judged them right. A sampling step left queued (sent to the generation
    worker) ends the round: the comparisons are that run's to write."""
    project = round_.project
    steps = round_steps(project)
    total, done, made = sum(WEIGHT[k] for k in steps), 0, None
    for kind in steps:
        if kind == Kind.GENERATE and project.recipe.promotion == Recipe.Promotion.MANUAL:
            report(1.0, note="The new policy awaits promotion; no comparisons sampled.")
            return
        inputs = {"prompts": ROUND_SAMPLE_PROMPTS} if kind == Kind.GENERATE else {}
        if made is not None and kind in (*POLICY_STEP.values(), Kind.GENERATE):
            inputs["policy"] = made
        if kind == Kind.GENERATE and made is not None and made.status == PolicyVersion.Status.CANDIDATE:
            kept_back = f"Policy v{made.version} was kept back by the promotion gate; comparisons are sampled from it,"
            report.note(f"{kept_back} so that rankings of its answers tell whether the reward model judged them right.")
        step = create_run(project, kind, parent=round_, **inputs)
        report(done / total, step=kind.value, step_run=step.pk)
        carry_out_step(step)
        step.refresh_from_db()
        if kind == Kind.GENERATE and step.status == TrainingRun.Status.QUEUED:
            report(1.0, step=kind.value, step_run=step.pk, note=f"Sampling run {step.pk} is queued on the generation "
                   "worker: it writes the new policy's comparisons.")  # fmt: skip
            return
        if step.status != TrainingRun.Status.SUCCEEDED:
            raise RoundStepFailed(
                f"The {step.get_kind_display().lower()} step (run {step.pk}) {step.status}: {step.error}"
            )
        made = PolicyVersion.objects.filter(created_by_run=step).first() or made
        done += WEIGHT[kind]
        report(done / total, step=kind.value, step_run=step.pk, done=True)
