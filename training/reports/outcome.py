"""What a finished run came out with, in words and figures, for the top of its page: the version it
created (a reward model with its held-out accuracy and pairs, a policy and its status), the tasks
it made, or the reason it failed."""

from labeling.statistics import share_of_pairs
from training.models import EvalPair, PolicyVersion, RewardModelVersion, TrainingRun

Kind = TrainingRun.Kind


def run_outcome(run: TrainingRun) -> dict | None:
    """{"status", "headline", "lines": [...], "reward_model": {...} | None, "policy": ... | None};
    None while the run is queued or running."""
    if not run.is_finished:
        return None
    if run.status != TrainingRun.Status.SUCCEEDED:
        reason = (run.error or "no reason was recorded").strip().splitlines()[0]
        verb = "was cancelled" if run.status == TrainingRun.Status.CANCELLED else "failed"
        return {"status": run.status, "headline": f"The run {verb}: {reason}", "lines": []}
    made_by = [run.pk, *run.steps.values_list("pk", flat=True)] if run.kind == Kind.ROUND else [run.pk]
    reward_model = RewardModelVersion.objects.filter(created_by_run__in=made_by).order_by("-version").first()
    policy = PolicyVersion.objects.filter(created_by_run__in=made_by).order_by("-version").first()
    latest = (run.metrics or [{}])[-1]
    lines = []
    if reward_model is not None:
        pairs = reward_model.metrics.get("heldout", {}).get("pairs")
        lines.append(
            {
                "what": f"Reward model v{reward_model.version}",
                "detail": f"trained on {reward_model.rankings_count} rankings; held-out accuracy:",
                "share": share_of_pairs(reward_model.heldout_accuracy, pairs),
            }
        )
    if policy is not None:
        status = policy.get_status_display().lower()
        note = "" if policy.status == PolicyVersion.Status.ACTIVE else ": promote it in the admin to sample from it"
        kept = [check for check in policy.gate if not check["passed"]]
        if kept and policy.status == PolicyVersion.Status.CANDIDATE:
            note = "; the promotion gate kept it back (promote it in the admin to use it anyway)"
        lines.append({"what": f"Policy v{policy.version}", "detail": f"{status}{note}"})
        lines += [{"what": f"Gate: {check['name']}", "detail": check["text"]} for check in kept]
    if run.kind in (Kind.GENERATE, Kind.BLIND_EVAL):
        tasks = latest.get("tasks", 0)
        what = "blind comparison task" if run.kind == Kind.BLIND_EVAL else "comparison task"
        lines.append({"what": f"{tasks} {what}{'' if tasks == 1 else 's'}", "detail": _sampled_detail(run)})
    if run.kind == Kind.JUDGE:
        tasks = latest.get("tasks", 0)
        detail = f"by {run.config.get('judge', 'the AI judge')}, prompt version {run.config.get('prompt_version', '?')}"
        if tasks:
            detail += f"; {latest.get('tie_rate', 0):.0%} of pairs tied (its two orders disagreed)"
        lines.append({"what": f"{tasks} task{'' if tasks == 1 else 's'} ranked by the AI judge", "detail": detail})
    if latest.get("note"):
        lines.append({"what": "Note", "detail": latest["note"]})
    headline = lines[0]["what"] if lines else "Done"
    return {"status": run.status, "headline": headline, "lines": lines}


def _sampled_detail(run: TrainingRun) -> str:
    if run.kind == Kind.BLIND_EVAL:
        pair = EvalPair.objects.filter(run=run).select_related("version_a", "version_b").first()
        return f"v{pair.version_b.version} against v{pair.version_a.version}, for labelers" if pair else "none made"
    return f"from policy v{run.policy.version}, ready for labelers" if run.policy_id else "ready for labelers"
