"""The life of a TrainingRun: queued → running → succeeded / failed / cancelled.

A run's status only moves forward, and only through these functions: a run that was cancelled
or failed while its process was still busy is never marked succeeded afterwards.
"""

import ctypes
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
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
PR_SET_PDEATHSIG = 1  # prctl option: the signal a child gets when its parent dies
HEARTBEAT_SECONDS = 5
STALE_AFTER_SECONDS = 120  # a running run without a heartbeat this long is marked failed


ProgressLine = Callable[[TrainingRun], None]  # e.g. a command's progress line, called after each record


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


def record_progress(run: TrainingRun, progress: float, on_progress: ProgressLine | None = None, **metrics) -> None:
    """Appends a metrics point and moves the bar (then calls `on_progress(run)`, e.g. a command's
    progress line); raises RunCancelled if the run was stopped. A rank other than 0 records nothing."""
    if not is_main_process():
        return
    run.progress = min(1.0, progress)
    run.heartbeat_at = timezone.now()
    run.metrics = [*run.metrics, {"time": run.heartbeat_at.isoformat(), **metrics}]
    updated = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
        progress=run.progress, heartbeat_at=run.heartbeat_at, metrics=run.metrics
    )
    if not updated:
        raise RunCancelled(f"Run {run.pk} was stopped.")
    if on_progress:
        on_progress(run)


def note(run: TrainingRun, text: str) -> None:
    """A sentence for the run's page, in its log tail; printed too, so that the log tail a
    supervising worker copies from a training child's output carries it as well."""
    print(text, flush=True)
    TrainingRun.objects.filter(pk=run.pk).update(log_tail=text)


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


def supervise_in_child(run_id: int, parent_id: int | None = None) -> None:
    """Runs a queued run in a child process (`manage.py execute_run`) and watches it.

    The child frees its memory (GPU included) when it exits, and a crash in it cannot take the
    worker down. Every few seconds the supervisor beats the run's heartbeat and copies the child's
    latest output to the run's log tail; if the run was cancelled it stops the child. A child that
    exits without finishing the run fails it. A round (`parent_id`) that waits on the child gets
    the heartbeat too. With TRAINING_PROCESSES above 1, a run of a kind that trains on several
    processes is started by `accelerate launch`, one process a GPU (`child_command`).
    """
    command = child_command(run_id)
    with open(os.devnull, "w") as devnull:
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=devnull, text=True,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    TrainingRun.objects.filter(pk=run_id).update(child_pid=child.pid)
    output: list[str] = []
    reader = _drain(child, output)
    tail_written = -math.inf  # the first lines are written as soon as they come
    while child.poll() is None:
        time.sleep(HEARTBEAT_SECONDS / 5)
        run = TrainingRun.objects.filter(pk=run_id).only("status").first()
        if run is None or run.status in (TrainingRun.Status.CANCELLED, TrainingRun.Status.FAILED):
            _stop(child)
            break
        beating = [run_id] if parent_id is None else [run_id, parent_id]
        now = timezone.now()
        TrainingRun.objects.filter(pk__in=beating, status=TrainingRun.Status.RUNNING).update(heartbeat_at=now)
        if output and time.monotonic() - tail_written >= HEARTBEAT_SECONDS:
            TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
                log_tail="".join(output)[-4000:]
            )
            tail_written = time.monotonic()
    child.wait()
    reader.join(timeout=5)
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is not None and not run.is_finished:
        finish_run(
            run, TrainingRun.Status.FAILED, error=f"The training process exited with code {child.returncode}.",
            log_tail="".join(output),
        )  # fmt: skip
    TrainingRun.objects.filter(pk=run_id).update(child_pid=None)


def child_command(run_id: int) -> list[str]:
    """`manage.py execute_run ID`, under `accelerate launch` when this worker has several training
    processes and the run's kind trains on several (training.services.RunKind.processes).

    accelerate's `--cpu` launches one process and leaves several to MPI, so its torchrun launcher
    (`--multi_gpu`) starts them on GPUs and CPUs alike; each joins the others in
    training.executors.placement (NCCL on GPUs, gloo on the CPU)."""
    from training.services import KINDS  # services imports this module

    manage = [str(settings.BASE_DIR / "manage.py"), "execute_run", str(run_id)]
    run = TrainingRun.objects.filter(pk=run_id).only("kind").first()
    processes = settings.TRAINING_PROCESSES
    if processes == 1 or run is None or not KINDS[run.kind].processes:
        return [sys.executable, *manage]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
            *manage]  # fmt: skip


def die_with_parent() -> None:
    """In the child, before it runs: Linux kills it when the supervising worker dies (even by
    SIGKILL), so an orphan never goes on training and registering a model on its own. Each of
    several training processes calls it for itself too, so their launcher's death kills them."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _drain(child: subprocess.Popen, into: list[str]) -> threading.Thread:
    """Reads the child's output in a thread, so a full pipe never blocks it."""

    def read() -> None:
        for line in child.stdout:
            into.append(line)
            del into[:-200]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _stop(child: subprocess.Popen, grace: float = 10) -> None:
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
