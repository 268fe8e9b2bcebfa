"""Seeds comparison tasks with synthetic completions, without sampling: for load tests and demos.

The rows are made as the sampler makes them: prompts through `do_add_prompts`, then completions,
tasks and shuffled display positions through `do_create_comparison_tasks`, in batches. In a project
that selects by uncertainty, each task gets a synthetic score in [0, 1).
"""

import secrets
import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from labeling.management.commands._common import get_project
from labeling.models import ComparisonTask, Completion, Project, Prompt, TaskCompletion, text_digest
from labeling.services import do_add_prompts, do_create_comparison_tasks
from training.services import LaunchRefused, active_policy

WORDS = "the a model answer clear short long helpful honest careful step first then because so".split()


@dataclass(frozen=True)
class SyntheticSample:
    text: str
    token_count: int
    finish_reason: str = Completion.FinishReason.EOS


def synthetic_completions(n: int, k: int) -> list[SyntheticSample]:
    """K different answers of varied length to synthetic prompt n."""
    samples = []
    for j in range(k):
        words = [WORDS[(n * 7 + j * 3 + i) % len(WORDS)] for i in range(12 + (n + 5 * j) % 40)]
        text = f"Answer {j + 1} to prompt {n}: {' '.join(words)}."
        samples.append(SyntheticSample(text=text, token_count=len(words) + 5))
    return samples


class Command(BaseCommand):
    help = "Seed N comparison tasks with synthetic prompts and completions (no model), in batches."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--tasks", type=int, required=True, help="How many tasks to create.")
        parser.add_argument("--k", type=int, help="Completions per task (2 to 9; default: the project's K).")
        parser.add_argument("--kind", choices=ComparisonTask.Kind.values, default=ComparisonTask.Kind.TRAIN)
        parser.add_argument("--batch", type=int, default=1000, help="Tasks per transaction.")

    def handle(self, *args, project: str, tasks: int, k: int | None, kind: str, batch: int, **options) -> None:
        target = get_project(project)
        k = k or target.k
        if tasks < 1 or batch < 1 or not 2 <= k <= 9:
            raise CommandError("--tasks and --batch must be at least 1, and --k between 2 and 9.")
        try:
            policy = active_policy(target)
        except LaunchRefused as exc:
            raise CommandError(str(exc)) from None
        tag = secrets.token_hex(4)  # a fresh prefix each run keeps the prompts unique in the project
        started = time.monotonic()
        for start in range(0, tasks, batch):
            numbers = range(start, min(tasks, start + batch))
            texts = {
                n: f"Synthetic prompt {tag}-{n}: explain topic {n % 97} in {1 + n % 5} sentences." for n in numbers
            }
            do_add_prompts(target, texts.values(), source="seed_tasks")
            digests = {text_digest(text): n for n, text in texts.items()}
            prompts = Prompt.objects.filter(project=target, text_sha256__in=digests).order_by("id")
            sampled = [(prompt, synthetic_completions(digests[prompt.text_sha256], k)) for prompt in prompts]
            scores = None
            if target.selection == Project.Selection.UNCERTAINTY:  # scattered, so the queue walk is not the id order
                scores = [((digests[p.text_sha256] * 7919) % 1000) / 1000 for p, _ in sampled]
            do_create_comparison_tasks(
                target, policy.pk, sampled, kind, {"synthetic": True, "seed": start}, uncertainties=scores
            )
            done = numbers.stop
            rate = done / (time.monotonic() - started)
            self.stdout.write(f"\rseeded {done:,}/{tasks:,} tasks ({rate:,.0f}/s)", ending="")
            self.stdout.flush()
        analyze()
        elapsed = time.monotonic() - started
        self.stdout.write(f"\n{tasks:,} tasks with K={k} added to {target.name!r} in {elapsed:.1f} s.")


def analyze() -> None:
    """Fresh planner statistics after a bulk load, so the assignment query keeps its index plan."""
    if connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model in (Prompt, Completion, ComparisonTask, TaskCompletion)]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")
