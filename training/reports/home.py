"""What a project's home page shows staff: its versions, when the next round is due, what the
workers are doing now, and the runs each launch button starts. Plain values and rows, a fixed
number of queries."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from labeling.models import ComparisonTask, Judge, Project, Prompt
from labeling.statistics import share_of_pairs
from training.configs import rl_config
from training.datasets import new_rankings_since_last_reward_model
from training.models import PolicyVersion, Recipe, RewardModelVersion, TrainingRun
from training.reports.metrics import learning_curve, preference_evals, reward_model_rows, win_rates
from training.services import KINDS, LaunchRefused, default_pair, queue_of

LIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
DUE_ROUNDS_TASK = "training.start_due_rounds"
BLIND_EVAL_HELP = "Labelers compare b's answer with a's on held-out prompts, not told which is which."


def project_overview(project: Project, posted: dict | None = None) -> dict:
    """`posted`: a refused launch's form, whose values its button's fields keep."""
    policies = list(PolicyVersion.objects.filter(project=project).order_by("-version"))
    return {
        "active_policy": next((p for p in policies if p.status == PolicyVersion.Status.ACTIVE), None),
        "candidates": [p for p in policies if p.status == PolicyVersion.Status.CANDIDATE],
        "policies": policies,
        "reward_model": reward_model_row(project),
        "next_round": next_round(project),
        "queues": (queues := worker_queues(project)),
        "workers_busy": any(queue["runs"] for queue in queues),
        "recent_runs": list(
            TrainingRun.objects.filter(project=project, parent=None).order_by("-id").select_related("launched_by")[:8]
        ),
        "launches": launches(project, posted or {}),
        "next_step": next_step(project),
        "learning_curve": learning_curve(
            project, reward_model_rows(project), win_rates(project), preference_evals(project)
        ),  # fmt: skip
        "gate": project.recipe.promotion == Recipe.Promotion.AUTOMATIC and project.recipe.promotion_gate,
    }


def reward_model_row(project: Project) -> dict | None:
    version = RewardModelVersion.objects.filter(project=project).order_by("-version").first()
    if version is None:
        return None
    pairs = version.metrics.get("heldout", {}).get("pairs")
    return {"version": version, "heldout": share_of_pairs(version.heldout_accuracy, pairs)}


def next_round(project: Project) -> dict:
    """How beat's `start_due_rounds` sees the project: rankings since the last reward model against
    the project's threshold, a live round (which it never doubles), and when it checks next."""
    new = new_rankings_since_last_reward_model(project)
    live = (
        TrainingRun.objects.filter(project=project, kind=TrainingRun.Kind.ROUND, status__in=LIVE).order_by("id").first()
    )
    check = beat_check()
    return {
        "new_rankings": new,
        "threshold": project.recipe.retrain_threshold,
        "missing": max(0, project.recipe.retrain_threshold - new),
        "due": new >= project.recipe.retrain_threshold,
        "live_round": live,
        "check": check,
    }


def beat_check() -> dict:
    """Beat's periodic check of due rounds, as stored in django-celery-beat's tables (editable in the
    admin); before beat first starts, the schedule in settings."""
    task = PeriodicTask.objects.filter(task=DUE_ROUNDS_TASK).select_related("interval").first()
    if task is None:
        every = next(
            (entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == DUE_ROUNDS_TASK),
            None,
        )
        return {"enabled": every is not None, "every_s": every, "last_run_at": None, "next_at": None}
    every = task.interval.schedule.run_every.total_seconds() if task.interval else None
    next_at = task.last_run_at + timedelta(seconds=every) if task.last_run_at and every else None
    return {"enabled": task.enabled, "every_s": every, "last_run_at": task.last_run_at, "next_at": next_at}


def phase(run: TrainingRun) -> str:
    """What a run is doing, in words: its latest metrics point's phase, else its step count."""
    if run.status == TrainingRun.Status.QUEUED:
        return "waiting for a worker"
    latest = (run.metrics or [{}])[-1]
    if latest.get("phase"):
        return latest["phase"]
    if isinstance(latest.get("step"), int) and latest.get("steps"):
        return f"step {latest['step']} of {latest['steps']}"
    return "starting"


def time_left(run: TrainingRun, now=None) -> str:
    """A running run's time left at its pace so far, in words ("about 4 min left"); "" before there
    is a pace to go by (under 5% done)."""
    if run.status != TrainingRun.Status.RUNNING or not run.started_at or run.progress < 0.05:
        return ""
    elapsed = ((now or timezone.now()) - run.started_at).total_seconds()
    left = elapsed * (1 - run.progress) / run.progress
    return f"about {max(1, round(left / 60))} min left at the pace so far" if left >= 60 else "under a minute left"


def worker_queues(project: Project) -> list[dict]:
    """Per queue, the live runs of every project in the order a worker takes them: what each worker
    is doing now and what waits behind it. A round's training steps run inside the round, on its
    queue; its sampling step is sent to the generation queue like any sampling run."""
    sent = Q(parent=None) | Q(kind=TrainingRun.Kind.GENERATE)
    live = list(
        TrainingRun.objects.filter(sent, status__in=LIVE).select_related("project").order_by("created_at", "id")
    )
    steps = TrainingRun.objects.filter(status__in=LIVE, parent__in=live).exclude(sent).order_by("id")
    step_of = {step.parent_id: step for step in steps}
    queues = {name: [] for name in ("generation", "training")}
    for run in live:
        queue = queue_of(run.kind) if run.kind in KINDS else "training"
        step = step_of.get(run.pk)
        queues.setdefault(queue, [])
        queues[queue].append(
            {
                "run": run,
                "ours": run.project_id == project.pk,
                "percent": round(100 * run.progress),
                "phase": phase(run),
                "step": step,
                "step_phase": phase(step) if step else "",
                "ahead": len(queues[queue]),  # live runs sent to this queue before it
            }
        )
    return [{"name": name, "runs": runs} for name, runs in queues.items()]


def launches(project: Project, posted: dict) -> list[dict]:
    """A button per kind of run in KINDS, with the values its fields start from: the posted ones for
    the kind just refused, else the defaults (blind evaluation: the newest live policy over its
    parent). `recommended` marks the next step the loop waits for; `slow` the kinds that take
    minutes on a CPU."""
    try:
        a, b = default_pair(project)
    except LaunchRefused:
        a = b = None
    recommended = next_step(project)["kind"]
    rows = []
    judged = Judge.objects.filter(project=project).exists()
    for kind in KINDS:
        if kind == TrainingRun.Kind.JUDGE and not judged:
            continue  # set a judge first (the admin's project page)
        mine = posted.get("kind") == kind
        rows.append(
            {
                "kind": kind,
                "label": TrainingRun.Kind(kind).label,
                "help": BLIND_EVAL_HELP if kind == TrainingRun.Kind.BLIND_EVAL else (KINDS[kind].action or ("", ""))[1],
                "a": str(posted.get("a", "")) if mine else str(a.pk if a else ""),
                "b": str(posted.get("b", "")) if mine else str(b.pk if b else ""),
                "prompts": posted.get("prompts", "") if mine else "",
                "steps": posted.get("steps", "") if mine else "",
                "tasks": posted.get("tasks", "") if mine else "",
                "default_steps": rl_config(project.recipe, kind).steps if kind in RL_KINDS else None,
                "recommended": kind == recommended,
                "slow": SLOW.get(kind, ""),
            }
        )
    return rows


RL_KINDS = (TrainingRun.Kind.PPO, TrainingRun.Kind.RLOO)
SLOW = {
    TrainingRun.Kind.RM: "Takes a minute or two on a CPU with the bundled model, more as rankings grow.",
    TrainingRun.Kind.RLOO: "Takes minutes on a CPU: about 3 with the bundled model on 2 cores.",
    TrainingRun.Kind.PPO: "Takes tens of minutes on a CPU.",
    TrainingRun.Kind.DPO: "Takes minutes on a CPU, more as rankings grow.",
    TrainingRun.Kind.SFT: "Takes minutes on a CPU.",
    TrainingRun.Kind.ROUND: "Takes 5 to 10 minutes on a CPU with the bundled model on 2 cores.",
}
"""What a run costs on a CPU, measured with the bundled 135M model on 2 cores (docs/benchmarks.md)."""


def next_step(project: Project) -> dict:
    """What the loop waits for, in words, and the kind of run that moves it on (None: the labelers)."""
    if TrainingRun.objects.filter(project=project, status__in=LIVE).exists():
        return {"kind": None, "why": "A run is under way: follow it below; the next step shows when it ends."}
    kept_back = PolicyVersion.objects.filter(project=project, status=PolicyVersion.Status.CANDIDATE).exclude(gate=[])
    open_tasks = ComparisonTask.objects.filter(project=project, state=ComparisonTask.State.OPEN).exists()
    new, threshold = new_rankings_since_last_reward_model(project), project.recipe.retrain_threshold
    if not open_tasks and not new:
        return {"kind": TrainingRun.Kind.GENERATE, "why": "Nothing to rank yet: sample comparisons for the labelers."}
    if new >= threshold:
        return {"kind": TrainingRun.Kind.ROUND, "why": f"{new} new rankings (a round is due at {threshold}): run one "
                "now, or let beat start it."}  # fmt: skip
    if kept_back.exists() and Prompt.objects.filter(project=project, heldout=True).exists():
        return {"kind": TrainingRun.Kind.BLIND_EVAL, "why": "The gate kept a candidate back: a blind evaluation by "
                "labelers tells whether it is better anyway."}  # fmt: skip
    if not open_tasks:
        return {"kind": TrainingRun.Kind.GENERATE, "why": "Labelers have ranked everything: sample more comparisons, "
                f"or run a round on the {new} new rankings."}  # fmt: skip
    return {"kind": None, "why": f"The loop waits for labelers: {threshold - new} more rankings start the next round "
            f"({new} of {threshold})."}  # fmt: skip


def projects_overview() -> list[dict]:
    """The staff's first page on the training side: per project, its active policy, its latest reward
    model, rankings since it against the round threshold (one count per project), and its live runs."""
    projects = list(Project.objects.select_related("recipe").order_by("name"))
    active = dict(PolicyVersion.objects.filter(status=PolicyVersion.Status.ACTIVE).values_list("project_id", "version"))
    latest_rm = dict(RewardModelVersion.objects.order_by("project_id", "version").values_list("project_id", "version"))
    live: dict[int, list[TrainingRun]] = {}
    for run in TrainingRun.objects.filter(status__in=LIVE, parent=None).order_by("id"):
        live.setdefault(run.project_id, []).append(run)
    return [
        {
            "project": project,
            "active": active.get(project.pk),
            "reward_model": latest_rm.get(project.pk),
            "new_rankings": new_rankings_since_last_reward_model(project),
            "threshold": project.recipe.retrain_threshold,
            "live": live.get(project.pk, []),
        }
        for project in projects
    ]
