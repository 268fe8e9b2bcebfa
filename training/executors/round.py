"""A full round: reward model → PPO → promotion → new comparisons, each step its own run."""

from labeling.models import Project
from training.models import TrainingRun
from training.runs import ProgressLine, carried_out, record_progress, start_run, supervise_in_child
from training.services import executor_of, launch

Kind = TrainingRun.Kind
ROUND_SAMPLE_PROMPTS = 50  # comparisons sampled from the new policy at the end of a round
# (kind, progress at its start, progress at its end, launch inputs)
STEPS = [
    (Kind.RM, 0.0, 0.35, {}),
    (Kind.PPO, 0.35, 0.85, {}),
    (Kind.GENERATE, 0.85, 1.0, {"prompts": ROUND_SAMPLE_PROMPTS}),
]


class RoundStepFailed(Exception):
    """A step of a round did not succeed; the round stops there."""


def execute_round(run_id: int, on_progress: ProgressLine | None = None, in_child: bool = False) -> TrainingRun | None:
    """Carries out a queued round, each step its own run: in a supervised child process on a
    worker (`in_child`), or here, the progress line following each step (`--sync`)."""
    round_ = start_run(run_id)
    if round_ is None:
        return None
    project = round_.project
    with carried_out(round_):
        for kind, start, end, inputs in STEPS:
            if kind == Kind.GENERATE and project.promotion == Project.Promotion.MANUAL:
                record_progress(round_, 1.0, note="The new policy awaits promotion; no comparisons sampled.")
                break
            step = launch(project, kind, parent=round_, enqueue=False, **inputs)
            record_progress(round_, start, step=kind.value, step_run=step.pk, on_progress=on_progress)
            if in_child:
                supervise_in_child(step.pk, parent_id=round_.pk)
            else:
                executor_of(kind)(step.pk, on_progress=on_progress)
            step.refresh_from_db()
            if step.status != TrainingRun.Status.SUCCEEDED:
                raise RoundStepFailed(
                    f"The {step.get_kind_display().lower()} step (run {step.pk}) {step.status}: {step.error}"
                )
            record_progress(round_, end, step=kind.value, step_run=step.pk, done=True, on_progress=on_progress)
    return round_
