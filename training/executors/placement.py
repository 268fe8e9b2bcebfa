"""The worker's one device-and-dtype decision (TRAINING_DEVICE, TRAINING_DTYPE), taken by every
run it carries out and recorded on the run row."""

from django.conf import settings

from training.core.devices import Placement, decide
from training.models import TrainingRun


def worker_placement() -> Placement:
    """Raises PlacementError, saying what is missing, when the settings ask for what is not here."""
    return decide(settings.TRAINING_DEVICE, settings.TRAINING_DTYPE)


def placed(run: TrainingRun) -> Placement:
    """The worker's placement, recorded on `run` (device, dtype, accelerator), its peak-memory
    counter reset; `carried_out` adds the peak when the run ends. Call inside `carried_out`, so that
    a setting this worker cannot honour fails the run with its reason."""
    placement = worker_placement()
    placement.reset_peak_memory()
    run.hardware = placement.describe()
    TrainingRun.objects.filter(pk=run.pk).update(hardware=run.hardware)
    return placement
