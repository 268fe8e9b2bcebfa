"""Runs an RLOO round: the active policy against the latest reward model, k samples per prompt, no critic."""

from training.management.commands._common import RLStepCommand
from training.models import TrainingRun


class Command(RLStepCommand):
    help = "Run an RLOO round (k samples per prompt, leave-one-out baseline) against the latest reward model."
    kind = TrainingRun.Kind.RLOO
