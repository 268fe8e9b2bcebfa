"""Win rate of policy version b over a on prompts, judged by a scoring function; with --best-of N,
of b's best of N completions by the latest reward model (the baseline RL has to beat)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.conversations import Chat
from labeling.importing import ImportFileError, prompt_chats_from_jsonl
from labeling.management.commands._common import get_project
from labeling.management.commands.simulate_labelers import load_preference
from training.executors.evaluation import evaluate_policies
from training.management.commands._common import get_policy_version
from training.reports.metrics import eval_label
from training.services import LaunchRefused, default_pair, latest_reward_model


class Command(BaseCommand):
    help = "Sample two policy versions on prompts, score both with a function, print and store b's win rate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--preference", required=True, help="module:callable(prompt, completions) -> scores")
        parser.add_argument("--a", type=int, help="Version number of a (default: the active policy's parent).")
        parser.add_argument("--b", type=int, help="Version number of b (default: the active policy).")
        parser.add_argument(
            "--prompts",
            type=Path,
            help="JSONL of prompts or conversations, as import_prompts reads (default: the project's).",
        )
        parser.add_argument("--limit", type=int, default=32, help="At most this many prompts.")
        parser.add_argument(
            "--best-of",
            type=int,
            default=1,
            help="b samples this many per prompt and keeps the one the latest reward model scores highest.",
        )

    def handle(self, *args, project, preference, a, b, prompts, limit, best_of, **options) -> None:
        if best_of < 1:
            raise CommandError(f"--best-of must be 1 or more, not {best_of}.")
        target = get_project(project)
        score = load_preference(preference)
        reward_model = latest_reward_model(target) if best_of > 1 else None
        if best_of > 1 and reward_model is None:
            raise CommandError(
                f"Best-of-{best_of} needs a reward model to pick with, and {target} has none: train one first."
            )
        try:
            default_a, default_b = default_pair(target)
        except LaunchRefused as exc:
            raise CommandError(str(exc)) from None
        version_a = get_policy_version(target, a) or default_a
        version_b = get_policy_version(target, b) or default_b
        if version_a == version_b and best_of == 1:
            raise CommandError(f"Both sides are policy v{version_a.version}; name two versions with --a and --b.")
        texts = self._prompts(target, prompts)[:limit]
        if not texts:
            raise CommandError("No prompts to evaluate on.")
        run = evaluate_policies(
            target, version_a, version_b, texts, score, label=preference, best_of=best_of, reward_model=reward_model
        )
        figures = run.metrics[-1]
        picked = f" (picked by RM v{reward_model.version})" if reward_model else ""
        self.stdout.write(
            f"{eval_label(version_a.version, version_b.version, best_of)}{picked} on {figures['n']} prompts: win rate "
            f"{figures['win_rate_b_over_a']:.1%}; mean score {figures['mean_score_a']:.3f} -> "
            f"{figures['mean_score_b']:.3f} (stored as run {run.pk})."
        )

    def _prompts(self, project, path: Path | None) -> list[Chat]:
        if path is None:
            return [prompt.chat for prompt in project.prompts.order_by("id")]
        try:
            return prompt_chats_from_jsonl(path)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
