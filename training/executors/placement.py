"""The worker's one device-and-dtype decision (TRAINING_DEVICE, TRAINING_DTYPE), taken by every
run it carries out and recorded on the run row."""

import torch
from django.conf import settings

from training.core.devices import Placement, decide
from training.core.distributed import join, launched_processes, local_rank
from training.models import TrainingRun
from training.runs import is_main_process


def worker_placement() -> Placement:
    """This process's placement; on several processes (TRAINING_PROCESSES, started by the launcher)
    its own GPU, once it has joined the others. Raises PlacementError, saying what is missing, when
    the settings ask for what is not here."""
    placement = decide(settings.TRAINING_DEVICE, settings.TRAINING_DTYPE, launched_processes(), local_rank())
    if placement.device.type == "cuda":
        torch.cuda.set_device(placement.device)
    join(placement.device)
    return placement


def placed(run: TrainingRun) -> Placement:
    """The worker's placement, recorded on `run` (device, dtype, accelerator), its peak-memory
    counter reset; `carried_out` adds the peak when the run ends. Call inside `carried_out`, so that
    a setting this worker cannot honour fails the run with its reason."""
    placement = worker_placement()
    placement.reset_peak_memory()
    run.hardware = {**placement.describe(), "processes": launched_processes()}
    if is_main_process():
        TrainingRun.objects.filter(pk=run.pk).update(hardware=run.hardware)
    return placement
