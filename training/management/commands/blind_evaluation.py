"""Starts a blind human evaluation of two policy versions on held-out prompts."""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from labeling.services import do_add_prompts, do_hold_out_prompts
from training.blind_eval import BlindEvaluationRefused, do_launch_blind_evaluation, execute_blind_evaluation_run
from training.management.commands._common import get_policy_version, get_project, progress_line
from training.models import TrainingRun
from training.runs import BrokerUnavailable


class Command(BaseCommand):
    help = (
        "Sample two policy versions on held-out prompts into blind comparison tasks (K=2, kind eval) that "
        "labelers rank without knowing which is which; the win rate appears on the dashboard."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--prompts", type=int, default=50, help="At most this many held-out prompts.")
        parser.add_argument("--a", type=int, help="Version number of a (default: the active policy's parent).")
        parser.add_argument("--b", type=int, help="Version number of b (default: the active policy).")
        parser.add_argument(
            "--hold-out", type=Path, help="JSONL with a 'prompt' field: add these prompts as held out first."
        )
        parser.add_argument("--sync", action="store_true", help="Run here and wait, instead of on a worker.")

    def handle(self, *args, project, prompts, a, b, hold_out, sync, **options) -> None:
        target = get_project(project)
        if hold_out is not None:
            self._hold_out(target, hold_out)
        try:
            run = do_launch_blind_evaluation(
                target, prompts, a=get_policy_version(target, a), b=get_policy_version(target, b), enqueue=not sync
            )
        except (BlindEvaluationRefused, BrokerUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(f"Queued run {run.pk} on the 'generation' queue; follow it in the admin.")
            return
        run = execute_blind_evaluation_run(run.pk, on_progress=progress_line)
        self.stdout.write("")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        made = run.metrics[-1]["tasks"]
        self.stdout.write(
            f"Run {run.pk}: {made} blind comparison tasks of v{run.config['version_b']} vs v{run.config['version_a']} "
            f"are in the labelers' queues (at the project's eval ratio). {run.log_tail}".rstrip()
        )

    def _hold_out(self, project, path: Path) -> None:
        try:
            texts = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"Cannot read prompts from {path}: {exc}") from None
        try:
            added = do_add_prompts(project, texts, source=path.name)
            held = do_hold_out_prompts(project.prompts.filter(text__in=texts), hold_out=True)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{held} prompts held out for evaluation ({added.created} new).")
