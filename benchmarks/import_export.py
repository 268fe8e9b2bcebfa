"""Import speed and export memory, each measured on `manage.py` run in a child process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rlhf_bench .venv/bin/python benchmarks/import_export.py

- export: seeds a project (bulk inserts) whose rankings give --pairs pairs (K=4, no ties: 6 pairs
  a ranking), runs `manage.py export_preferences --format pairs --output FILE`, and reports the
  child's peak RSS (getrusage(RUSAGE_CHILDREN) in a small launcher), whether it imported torch,
  and its time. The export must stream: peak memory stays flat however many rankings there are.
- import: writes a --lines-line JSONL with three bad lines, runs `manage.py import_prompts` on it,
  and reports the time, the invalid line numbers it printed, and the child's peak RSS.

The database is migrated first; the projects it seeds are deleted afterwards. Prints one JSON line
per measurement.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from labeling.models import (  # noqa: E402
    ComparisonTask,
    Completion,
    Project,
    Prompt,
    Ranking,
    TaskCompletion,
    text_digest,
)
from training.models import PolicyVersion  # noqa: E402
from training.services import do_create_project  # noqa: E402

K = 4
SEED_BATCH = 2000
BAD_LINES = {1_234: "not json at all", 50_000: '{"prompt": ""}', 99_999: '{"prompt": 17}'}
# The child runs `manage.py` and says at exit whether torch was ever imported into it. It is started
# by a small launcher that reports its peak RSS through getrusage(RUSAGE_CHILDREN): Linux carries a
# process's high-water RSS across fork and exec, so a child forked straight from this (large) process
# would report this process's size.
CHILD = (
    "import atexit, runpy, sys; "
    "atexit.register(lambda: sys.stderr.write('\\ntorch imported: %s\\n' % ('torch' in sys.modules))); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
LAUNCHER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "sys.stderr.write('\\npeak rss kib: %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def run_child(*args: str) -> dict:
    """Runs `manage.py args` in a child; its output, wall time, peak RSS (MB) and whether it imported torch."""
    command = [sys.executable, "-c", LAUNCHER, sys.executable, "-c", CHILD, str(ROOT / "manage.py"), *args]
    started = time.perf_counter()
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(
            f"{' '.join(args)} failed ({child.returncode}):\n{child.stdout[-2000:]}\n{child.stderr[-2000:]}"
        )
    peak_kib = int(re.search(r"peak rss kib: (\d+)", child.stderr).group(1))
    return {
        "stdout": child.stdout,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "torch_imported": "torch imported: True" in child.stderr,
    }


def new_project(label: str) -> Project:
    return do_create_project(Project(name=f"bench-{label}-{uuid.uuid4().hex[:8]}"))


def seed_rankings(project: Project, rankings: int, labelers: int = 8) -> None:
    """`rankings` tasks of K completions each, ranked once with no ties, in bulk inserts of SEED_BATCH tasks."""
    users = [get_user_model().objects.get_or_create(username=f"bench-labeler-{n}")[0] for n in range(labelers)]
    policy = PolicyVersion.objects.get(project=project, version=0)
    filler = "The answer goes on for a while to look like a real completion. " * 4
    for start in range(0, rankings, SEED_BATCH):
        numbers = range(start, min(start + SEED_BATCH, rankings))
        texts = [f"Question {n}: explain topic {n} to a curious ten-year-old." for n in numbers]
        prompts = Prompt.objects.bulk_create(
            Prompt(project=project, text=text, text_sha256=text_digest(text), source="bench") for text in texts
        )
        completions = Completion.objects.bulk_create(
            Completion(prompt=p, policy_version=policy, text=f"Answer {i} to {p.text} {filler}", token_count=60,
                       finish_reason=Completion.FinishReason.EOS)
            for p in prompts for i in range(K)
        )  # fmt: skip
        tasks = ComparisonTask.objects.bulk_create(
            ComparisonTask(project=project, prompt=p, policy_version=policy, state=ComparisonTask.State.COMPLETE)
            for p in prompts
        )
        TaskCompletion.objects.bulk_create(
            TaskCompletion(task=t, completion=completions[j * K + i], position=i)
            for j, t in enumerate(tasks)
            for i in range(K)
        )
        Ranking.objects.bulk_create(
            Ranking(task=t, labeler=users[j % labelers], order=[[completions[j * K + i].pk] for i in (2, 0, 3, 1)])
            for j, t in enumerate(tasks)
        )
        sys.stderr.write(f"\rseeded {numbers[-1] + 1:,}/{rankings:,} rankings")
    sys.stderr.write("\n")


def delete_project(project: Project) -> None:
    """Deletes what the benchmark stored, children first (completions and rankings protect their parents)."""
    Ranking.objects.filter(task__project=project).delete()
    TaskCompletion.objects.filter(task__project=project).delete()
    ComparisonTask.objects.filter(project=project).delete()
    Completion.objects.filter(prompt__project=project).delete()
    Prompt.objects.filter(project=project).delete()
    project.delete()


def measure_export(pairs: int) -> dict:
    project = new_project("export")
    rankings = -(-pairs // (K * (K - 1) // 2))
    try:
        started = time.perf_counter()
        seed_rankings(project, rankings)
        seeding = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as folder:
            output = Path(folder) / "pairs.jsonl"
            child = run_child("export_preferences", "--project", str(project.pk), "--format", "pairs",
                              "--output", str(output))  # fmt: skip
            with output.open("rb") as lines:
                written = sum(1 for _ in lines)
            size = output.stat().st_size
    finally:
        delete_project(project)
    return {
        "measure": "export_preferences --format pairs",
        "rankings": rankings,
        "k": K,
        "pairs": written,
        "file_mb": round(size / 2**20, 1),
        "seconds": child["seconds"],
        "pairs_per_s": round(written / child["seconds"]),
        "peak_rss_mb": child["peak_rss_mb"],
        "torch_imported": child["torch_imported"],
        "seed_seconds": round(seeding, 1),
    }


def measure_import(lines: int) -> dict:
    project = new_project("import")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "prompts.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for n in range(1, lines + 1):
                    row = {"prompt": f"Prompt {n}: summarise the history of idea {n} in three sentences.", "n": n}
                    out.write(BAD_LINES.get(n, json.dumps(row)) + "\n")
            child = run_child("import_prompts", "--project", str(project.pk), str(path))
        stored = Prompt.objects.filter(project=project).count()
    finally:
        delete_project(project)
    lines_out = child["stdout"].splitlines()  # the progress line's carriage returns read as line ends here
    last_progress = max(i for i, line in enumerate(lines_out) if "lines read:" in line)
    report = "\n".join(lines_out[last_progress:])
    return {
        "measure": "import_prompts (JSONL)",
        "lines": lines,
        "imported": stored,
        "reported_invalid_lines": [int(n) for n in re.findall(r"^  line (\d+):", report, re.MULTILINE)],
        "seconds": child["seconds"],
        "lines_per_s": round(lines / child["seconds"]),
        "peak_rss_mb": child["peak_rss_mb"],
        "report": report.splitlines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--only", choices=["export", "import"])
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if args.only != "import":
        print(json.dumps(measure_export(args.pairs)), flush=True)
    if args.only != "export":
        print(json.dumps(measure_import(args.lines)), flush=True)


if __name__ == "__main__":
    main()
