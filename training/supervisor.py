"""A training run in a child process (`manage.py execute_run`), watched by the worker that
started it: the child frees its memory (GPU included) when it exits, a crash in it cannot take the
worker down, and a cancelled run's child is stopped."""

import ctypes
import math
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.utils import timezone

from training.models import TrainingRun
from training.runs import finish_run
from training.services import KINDS

PR_SET_PDEATHSIG = 1  # prctl option: the signal a child gets when its parent dies
HEARTBEAT_SECONDS = 5


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
