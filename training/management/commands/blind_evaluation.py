"""Starts a blind human evaluation of two policy versions on held-out prompts."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from labeling.importing import ImportFileError, prompt_chats_from_jsonl
from labeling.management.commands._common import get_project
from labeling.services import do_add_prompts, do_hold_out_prompts
from training.management.commands._common import get_policy_version, launch_or_run
from training.models import TrainingRun


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
        versions = {"a": get_policy_version(target, a), "b": get_policy_version(target, b)}
        run = launch_or_run(self, target, TrainingRun.Kind.BLIND_EVAL, sync, prompts=prompts, **versions)
        if run is not None:
            self.stdout.write(
                f"Run {run.pk}: {run.metrics[-1]['tasks']} blind comparison tasks of v{run.policy.version} vs "
                f"v{run.baseline.version} are in the labelers' queues (at the project's eval ratio). "
                f"{run.log_tail}".rstrip()
            )

    def _hold_out(self, project, path: Path) -> None:
        try:
            chats = prompt_chats_from_jsonl(path)
            if any(not isinstance(chat, str) for chat in chats):
                raise CommandError(
                    f"{path} holds conversations: import them with import_prompts, then hold them out in the admin "
                    "(Prompts, 'Hold out for evaluation'). --prompts takes single-turn prompts."
                )
            texts = list(chats)
            added = do_add_prompts(project, texts, source=path.name)
            held = do_hold_out_prompts(project.prompts.filter(text__in=texts, messages=[]), hold_out=True)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{held} prompts held out for evaluation ({added.created} new).")
