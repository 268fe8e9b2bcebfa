"""A full round: [SFT →] reward model → the project's algorithm → promotion → new comparisons, each
step its own run."""

from labeling.models import Project
from training.datasets import new_demonstrations_since_last_sft
from training.models import PolicyVersion, Recipe, TrainingRun
from training.runs import ProgressLine, carried_out, record_progress, start_run, supervise_in_child
from training.services import executor_of, launch

Kind = TrainingRun.Kind
ROUND_SAMPLE_PROMPTS = 50  # comparisons sampled from the new policy at the end of a round
POLICY_STEP = {Recipe.Algorithm.PPO: Kind.PPO, Recipe.Algorithm.RLOO: Kind.RLOO, Recipe.Algorithm.DPO: Kind.DPO}
WEIGHT = {Kind.SFT: 2, Kind.RM: 2, Kind.PPO: 5, Kind.RLOO: 5, Kind.DPO: 5, Kind.GENERATE: 2}  # share of the bar


class RoundStepFailed(Exception):
    """A step of a round did not succeed; the round stops there."""


def round_steps(project: Project) -> list[Kind]:
    """SFT when the project's threshold of new demonstrations has arrived; the reward model (which
    a DPO round trains too unless the project turns it off: fresh-label accuracy and uncertainty
    selection read it); the policy step of the project's algorithm; then new comparisons from the
    new policy."""
    recipe = project.recipe
    sft_due = recipe.sft_threshold and new_demonstrations_since_last_sft(project) >= recipe.sft_threshold
    reward_model = recipe.algorithm != Recipe.Algorithm.DPO or recipe.dpo_trains_reward_model
    return [*([Kind.SFT] if sft_due else []), *([Kind.RM] if reward_model else []), POLICY_STEP[recipe.algorithm],
            Kind.GENERATE]  # fmt: skip


def execute_round(run_id: int, on_progress: ProgressLine | None = None, in_child: bool = False) -> TrainingRun | None:
    """Carries out a queued round, each step its own run: in a supervised child process on a
    worker (`in_child`), or here, the progress line following each step (`--sync`). A policy step
    starts from the version the step before it made (an SFT policy waiting for manual promotion)."""
    round_ = start_run(run_id)
    if round_ is None:
        return None
    project = round_.project
    with carried_out(round_):
        steps = round_steps(project)
        total, done, made = sum(WEIGHT[k] for k in steps), 0, None
        for kind in steps:
            if kind == Kind.GENERATE and project.recipe.promotion == Recipe.Promotion.MANUAL:
                record_progress(round_, 1.0, note="The new policy awaits promotion; no comparisons sampled.")
                break
            inputs = {"prompts": ROUND_SAMPLE_PROMPTS} if kind == Kind.GENERATE else {}
            if made is not None and kind in POLICY_STEP.values():
                inputs["policy"] = made
            step = launch(project, kind, parent=round_, enqueue=False, **inputs)
            record_progress(round_, done / total, step=kind.value, step_run=step.pk, on_progress=on_progress)
            if in_child:
                supervise_in_child(step.pk, parent_id=round_.pk)
            else:
                executor_of(kind)(step.pk, on_progress=on_progress)
            step.refresh_from_db()
            if step.status != TrainingRun.Status.SUCCEEDED:
                raise RoundStepFailed(
                    f"The {step.get_kind_display().lower()} step (run {step.pk}) {step.status}: {step.error}"
                )
            made = PolicyVersion.objects.filter(created_by_run=step).first() or made
            done += WEIGHT[kind]
            record_progress(round_, done / total, step=kind.value, step_run=step.pk, done=True, on_progress=on_progress)
    return round_
