"""Win rate of policy version b over a on prompts, judged by a scoring function."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.importing import ImportFileError, prompt_texts_from_jsonl
from labeling.management.commands._common import get_project
from labeling.management.commands.simulate_labelers import load_preference
from training.executors.evaluation import evaluate_policies
from training.management.commands._common import get_policy_version
from training.services import LaunchRefused, default_pair


class Command(BaseCommand):
    help = "Sample two policy versions on prompts, score both with a function, print and store b's win rate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--preference", required=True, help="module:callable(prompt, completions) -> scores")
        parser.add_argument("--a", type=int, help="Version number of a (default: the active policy's parent).")
        parser.add_argument("--b", type=int, help="Version number of b (default: the active policy).")
        parser.add_argument("--prompts", type=Path, help="JSONL with a 'prompt' field (default: the project's).")
        parser.add_argument("--limit", type=int, default=32, help="At most this many prompts.")

    def handle(self, *args, project, preference, a, b, prompts, limit, **options) -> None:
        target = get_project(project)
        score = load_preference(preference)
        try:
            default_a, default_b = default_pair(target)
        except LaunchRefused as exc:
            raise CommandError(str(exc)) from None
        version_a = get_policy_version(target, a) or default_a
        version_b = get_policy_version(target, b) or default_b
        if version_a == version_b:
            raise CommandError(f"Both sides are policy v{version_a.version}; name two versions with --a and --b.")
        texts = self._prompts(target, prompts)[:limit]
        if not texts:
            raise CommandError("No prompts to evaluate on.")
        run = evaluate_policies(target, version_a, version_b, texts, score, label=preference)
        figures = run.metrics[-1]
        self.stdout.write(
            f"v{version_b.version} over v{version_a.version} on {figures['n']} prompts: win rate "
            f"{figures['win_rate_b_over_a']:.1%}; mean score {figures['mean_score_a']:.3f} -> "
            f"{figures['mean_score_b']:.3f} (stored as run {run.pk})."
        )

    def _prompts(self, project, path: Path | None) -> list[str]:
        if path is None:
            return list(project.prompts.order_by("id").values_list("text", flat=True))
        try:
            return prompt_texts_from_jsonl(path)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
