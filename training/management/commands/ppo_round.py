"""Runs a PPO round: the active policy against the latest reward model, with a critic."""

from training.management.commands._common import RLStepCommand
from training.models import TrainingRun


class Command(RLStepCommand):
    help = "Run a PPO round on a project's active policy against its latest reward model."
    kind = TrainingRun.Kind.PPO
