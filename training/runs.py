"""The life of a TrainingRun: queued → running → succeeded / failed / cancelled, and what a run
reports on the way (its Reporter).

A run's status only moves forward, and only through these functions: a run that was cancelled
or failed while its process was still busy is never marked succeeded afterwards. The process that
carries a run out is training.executors.carry_out; the one that supervises a training child is
training.supervisor.
"""

import logging
import os
import shutil
import signal
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.models import TrainingRun

log = logging.getLogger(__name__)
STALE_AFTER_SECONDS = 120  # a running run without a heartbeat this long is marked failed

Echo = Callable[[TrainingRun], None]
"""Called after each record: a command's progress line, or a training child's log line."""


def is_main_process() -> bool:
    """Whether this process writes: always, unless it is one of several training processes
    (TRAINING_PROCESSES) that are not rank 0. Only rank 0 records progress, metrics, checkpoints
    and rows; the others train beside it, and record only a failure of their own."""
    return os.environ.get("RANK", "0") == "0"


class RunCancelled(Exception):
    """The run was cancelled (or failed) while its process worked; the process stops."""


def checkpoint_name(run: TrainingRun) -> str:
    """Unique even if the database is recreated beside an old model store (run ids start again)."""
    return f"run-{run.pk}-{uuid.uuid4().hex[:8]}"


def start_run(run_id: int) -> TrainingRun | None:
    """Marks a queued run as running; None if it is gone or was already taken. The other ranks of
    several training processes wait for rank 0 to have taken it."""
    if not is_main_process():
        return _taken_by_rank_0(run_id)
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != TrainingRun.Status.QUEUED:
            return None
        run.status = TrainingRun.Status.RUNNING
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "started_at", "heartbeat_at"])
    return run


def _taken_by_rank_0(run_id: int, wait: float = 120) -> TrainingRun | None:
    deadline = time.monotonic() + wait
    while True:
        run = TrainingRun.objects.filter(pk=run_id).first()
        if run is None or run.status != TrainingRun.Status.QUEUED or time.monotonic() > deadline:
            return run if run is not None and run.status == TrainingRun.Status.RUNNING else None
        time.sleep(0.2)


@contextmanager
def carried_out(run: TrainingRun) -> Iterator[None]:
    """Wraps a run's work: it succeeds if the block ends, fails with the traceback if it raises,
    and stays as it is if it was stopped meanwhile (RunCancelled). Of several training processes,
    rank 0 finishes the run; another rank records only its own failure (which stops them all)."""
    main = is_main_process()
    try:
        yield
    except RunCancelled:
        if main:
            _record_peak_memory(run)
        return
    except Exception as exc:
        log.exception("%s run %s failed", run.kind, run.pk)
        if main:
            _record_peak_memory(run)
        fail_run(run, exc)
        return
    if main:
        _record_peak_memory(run)
        finish_run(run, TrainingRun.Status.SUCCEEDED)


def _record_peak_memory(run: TrainingRun) -> None:
    """Adds the peak memory of the device the run was placed on (training.executors.placement)."""
    if not run.hardware.get("device"):
        return
    from training.core.devices import peak_memory_mib  # torch: only where a run was placed, never in the web server

    run.hardware = {**run.hardware, "peak_memory_mib": peak_memory_mib(run.hardware["device"])}
    TrainingRun.objects.filter(pk=run.pk).update(hardware=run.hardware)


class Reporter:
    """Where a run says how it goes: the bar and the metrics behind its page's charts, the phase it
    is in, and notes for its log tail. Only rank 0 of several training processes writes (`main`);
    the others train beside it. A report on a run that was stopped raises RunCancelled, which ends
    the work. `echo` is called after each record."""

    def __init__(self, run: TrainingRun, echo: Echo | None = None) -> None:
        self.run, self.echo, self.main = run, echo, is_main_process()

    def __call__(self, progress: float, **metrics) -> None:
        """Moves the bar to `progress` (0 to 1) and appends a metrics point."""
        if not self.main:
            return
        run = self.run
        run.progress = min(1.0, progress)
        run.heartbeat_at = timezone.now()
        run.metrics = [*run.metrics, {"time": run.heartbeat_at.isoformat(), **metrics}]
        updated = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
            progress=run.progress, heartbeat_at=run.heartbeat_at, metrics=run.metrics
        )
        if not updated:
            raise RunCancelled(f"Run {run.pk} was stopped.")
        if self.echo:
            self.echo(run)

    def phase(self, progress: float, name: str) -> None:
        self(progress, phase=name)

    def steps(self, start: float, end: float) -> Callable[[dict], None]:
        """A trainer's `log`: each step's figures, the bar going from `start` to `end` over the steps,
        the phase naming the step, or the epoch whose held-out loss a record of its own reports."""

        def log(figures: dict) -> None:
            if "heldout_loss" in figures and "loss" not in figures:
                name = f"held-out loss after epoch {figures['epoch'] + 1}"
            else:
                name = f"training step {figures['step']} of {figures['steps']}"
            self(start + (end - start) * figures["step"] / figures["steps"], phase=name, **figures)

        return log

    def note(self, text: str) -> None:
        """A sentence for the run's page, in its log tail; printed too, so that the log tail a
        supervising worker copies from a training child's output carries it as well."""
        print(text, flush=True)
        TrainingRun.objects.filter(pk=self.run.pk).update(log_tail=text)


def check_still_running(run: TrainingRun) -> None:
    """Takes the run's row lock; call inside the transaction that registers what the run made."""
    current = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if current.status != TrainingRun.Status.RUNNING:
        raise RunCancelled(f"Run {run.pk} was stopped ({current.status}); nothing is registered.")


def finish_run(run: TrainingRun, status: str, error: str = "", log_tail: str = "") -> None:
    """Records the outcome, unless the run was already stopped (cancelled, or failed by a check)."""
    fields = {"status": status, "finished_at": timezone.now(), "child_pid": None}
    if error:
        fields["error"] = error
    if log_tail:
        fields["log_tail"] = log_tail[-4000:]
    if status == TrainingRun.Status.SUCCEEDED:
        fields["progress"] = 1.0
    TrainingRun.objects.filter(pk=run.pk, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).update(
        **fields
    )
    run.refresh_from_db()


def fail_run(run: TrainingRun, exc: Exception) -> None:
    """Marks a run failed with the exception and its traceback (called from an `except` block)."""
    rank = "" if is_main_process() else f"Training process {os.environ['RANK']}: "
    finish_run(run, TrainingRun.Status.FAILED, error=f"{rank}{type(exc).__name__}: {exc}",
               log_tail=traceback.format_exc())  # fmt: skip


def do_cancel_run(run: TrainingRun, by: str = "") -> bool:
    """Cancels a queued or running run; its process is stopped. False if it had already finished."""
    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if current.is_finished:
            return False
        current.status = TrainingRun.Status.CANCELLED
        current.error = f"Cancelled{f' by {by}' if by else ''}."
        current.finished_at = timezone.now()
        current.save(update_fields=["status", "error", "finished_at"])
    for step in current.steps.exclude(status__in=TrainingRun.FINISHED):  # a round's current step stops with it
        do_cancel_run(step, by=by)
    if current.child_pid:  # on the worker's machine the supervisor also stops it at its next heartbeat
        try:
            os.kill(current.child_pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return True


def fail_stale_runs(now=None) -> int:
    """Marks failed the running runs whose worker stopped sending heartbeats; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=STALE_AFTER_SECONDS)
    return TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff).update(
        status=TrainingRun.Status.FAILED,
        error=f"No heartbeat for {STALE_AFTER_SECONDS} s: the worker or its training process stopped.",
        finished_at=now,
        child_pid=None,
    )


def remove_partial_checkpoints() -> int:
    """Removes the staging folders (training.core.checkpoints) that runs now over left in the model
    store: a process killed mid-write cannot remove its own. Returns how many were removed."""
    staged: dict[int, list[Path]] = {}
    for folder in Path(settings.MODEL_STORE).glob("*/project-*/.run-*.partial-*"):
        staged.setdefault(int(folder.name.split("-")[1]), []).append(folder)  # .run-{pk}-{hex}.partial-...
    live = TrainingRun.objects.filter(pk__in=staged).exclude(status__in=TrainingRun.FINISHED)
    over = [folder for pk in staged.keys() - set(live.values_list("pk", flat=True)) for folder in staged[pk]]
    for folder in over:
        shutil.rmtree(folder, ignore_errors=True)
    return len(over)
