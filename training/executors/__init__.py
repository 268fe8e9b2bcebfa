"""Worker side: carrying out queued runs, one module per kind of run, and `carry_out`, the one place
that says which function carries out which kind.

They load models and import torch, so only the worker reaches them: training.tasks, the
`execute_run` command a training child runs, and commands run with `--sync` (`evaluate_policy`
imports `evaluation` itself: it evaluates in the caller's process). The web process never does.
"""

from functools import partial

from training.executors.blind_eval import sample_blind_evaluation
from training.executors.dpo import train_policy_with_dpo
from training.executors.judging import judge_tasks
from training.executors.ppo import train_policy_with_rl
from training.executors.reward_model import train_reward_model_version
from training.executors.round import carry_out_round
from training.executors.sampling import sample_comparisons
from training.executors.sft import fine_tune_policy
from training.models import TrainingRun
from training.runs import Echo, Reporter, carried_out, start_run
from training.services import send_on_commit
from training.supervisor import supervise_in_child

Kind = TrainingRun.Kind


def carry_out(run_id: int, echo: Echo | None = None, steps_on_workers: bool = False) -> TrainingRun | None:
    """Carries out a queued run in this process: marks it running, does its kind's work, and records
    how it ended (training.runs.carried_out). Returns the run, or None if it was not queued (already
    taken, or gone). `echo` is called after each record (a progress line).

    A round carries its steps out here too, one after the other, unless `steps_on_workers` (the
    training worker's round task): then each training step runs in a supervised child process and
    its sampling step is sent to the generation queue.
    """
    run = start_run(run_id)
    if run is None:
        return None
    report = Reporter(run, echo)
    with carried_out(run):
        match run.kind:
            case Kind.GENERATE:
                sample_comparisons(run, report)
            case Kind.RM:
                train_reward_model_version(run, report)
            case Kind.PPO | Kind.RLOO:
                train_policy_with_rl(run, report)
            case Kind.DPO:
                train_policy_with_dpo(run, report)
            case Kind.SFT:
                fine_tune_policy(run, report)
            case Kind.BLIND_EVAL:
                sample_blind_evaluation(run, report)
            case Kind.JUDGE:
                judge_tasks(run, report)
            case Kind.ROUND:
                step = partial(_step_on_a_worker, run) if steps_on_workers else partial(_step_here, echo=echo)
                carry_out_round(run, report, step)
            case _:
                raise ValueError(f"Runs of kind {run.kind!r} are not carried out by a worker.")
    return run


def _step_here(step: TrainingRun, echo: Echo | None) -> None:
    carry_out(step.pk, echo)


def _step_on_a_worker(round_: TrainingRun, step: TrainingRun) -> None:
    """A round's training step in a child process this worker supervises (its heartbeat the round's
    too); its sampling step sent to the generation worker, which samples while this one is free."""
    if step.kind == Kind.GENERATE:
        send_on_commit(step)
    else:
        supervise_in_child(step.pk, parent_id=round_.pk)
