"""Simulated labelers: rank comparison tasks with a scoring function, through the same services a
person uses (leases, overlap, validation). For smoke tests, AI feedback (RLAIF) and experiments."""

import importlib
import random
import sys
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from labeling.models import Project
from labeling.services import do_assign_next_task, do_submit_ranking
from labeling.statistics import plackett_luce_order

Preference = Callable[[str, list[str]], list[float]]


def load_preference(reference: str) -> Preference:
    """'package.module:callable' -> the callable."""
    module_name, _, name = reference.partition(":")
    if not module_name or not name:
        raise CommandError(f"--preference must look like 'package.module:function', not {reference!r}.")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"Cannot load preference {reference!r}: {exc}") from None


class Command(BaseCommand):
    help = "Rank a project's comparison tasks with simulated labelers who follow a scoring function."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--preference", required=True, help="module:callable(prompt, completions) -> scores")
        parser.add_argument("--rankings", type=int, required=True, help="How many rankings to submit at most.")
        parser.add_argument("--noise", type=float, default=0.0, help="Plackett–Luce temperature; 0 ranks by score.")
        parser.add_argument("--labelers", type=int, default=1, help="How many simulated accounts share the work.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(
        self, *args, project: str, preference: str, rankings: int, noise: float, labelers: int, seed: int, **options
    ):
        if rankings < 1 or labelers < 1 or noise < 0:
            raise CommandError("--rankings and --labelers must be at least 1, and --noise at least 0.")
        target: Project = get_project(project)
        score = load_preference(preference)
        accounts = [self._account(target, n) for n in range(1, labelers + 1)]
        rng, done, idle = random.Random(seed), 0, set()
        while done < rankings and len(idle) < len(accounts):
            labeler = accounts[done % len(accounts)] if not idle else next(a for a in accounts if a.pk not in idle)
            assignment = do_assign_next_task(target, labeler)
            if assignment is None:
                idle.add(labeler.pk)
                continue
            shown = assignment.task.display_completions()
            scores = list(score(assignment.task.prompt.text, [c.text for c in shown]))
            order = plackett_luce_order(scores, noise, rng)
            do_submit_ranking(assignment.task_id, labeler, [[shown[i].pk] for i in order])
            done += 1
            sys.stdout.write(f"\rsimulated rankings: {done}/{rankings}")
            sys.stdout.flush()
        self.stdout.write(f"\n{done} rankings submitted by {len(accounts)} simulated labelers."
                          + ("" if done == rankings else " No task was left for them."))  # fmt: skip

    def _account(self, project: Project, n: int):
        user, _ = get_user_model().objects.get_or_create(username=f"sim-{project.pk}-{n}")
        if user.has_usable_password():
            user.set_unusable_password()
            user.save(update_fields=["password"])
        project.labelers.add(user)
        return user
