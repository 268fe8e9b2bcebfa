"""Every figure of a project's dashboard in one dict of plain JSON-able values.

Three questions, side by side: do labelers agree (with each other, and with gold tasks)? Does
the reward model agree with labels it never saw (beside held-out accuracy, with human-human
agreement as the ceiling)? Do people prefer the new policy to the old one? A PPO score that
rises while the human win rate stays flat is reward hacking, and it shows here.

The dashboard page, `manage.py project_report` and the API all read `project_metrics`. Every
accuracy, agreement and win rate is a `labeling.statistics.share_of_pairs` dict: the share (None under
`MIN_PAIRS_TO_TELL` pairs), the number of pairs behind it and its 95% Wilson interval.
"""

from collections import defaultdict

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate

from labeling.models import Completion, Project, Ranking
from labeling.quality import MIN_PAIRS_TO_FLAG, labeler_quality
from labeling.statistics import MIN_PAIRS_TO_TELL, Agreement, PairCounts, share_of_pairs, win_rate
from training.datasets import fresh_rankings, training_rankings
from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun


def _counted(agreed: int | None, pairs: int | None) -> dict:
    """Agreed of `pairs` pairs (sums from SQL: None where there were no rows) as a share of pairs."""
    return share_of_pairs(PairCounts(agreed or 0, pairs or 0).share, pairs or 0)


def project_metrics(project: Project) -> dict:
    """The project's dashboard figures (a fixed number of queries, whatever the data)."""
    overall, quality = labeler_quality(project)
    rankings = ranking_counts(project)
    reward_models, blind, by_function = reward_model_rows(project), win_rates(project), preference_evals(project)
    return {
        "project": {
            "id": project.pk,
            "name": project.name,
            "agreement_threshold": project.agreement_threshold,
            "min_pairs_to_flag": MIN_PAIRS_TO_FLAG,
            "min_pairs_to_tell": MIN_PAIRS_TO_TELL,
            "gold_rate": project.gold_rate,
            "eval_ratio": project.eval_ratio,
            "overlap": project.overlap,
        },
        "rankings": rankings,
        "agreement": _agreement(overall),
        "labelers": labeler_rows(project, quality, rankings["per_labeler"]),
        "reward_models": reward_models,
        "ppo_runs": ppo_curves(project),
        "win_rates": blind,
        "preference_evals": by_function,
        "learning_curve": learning_curve(project, reward_models, blind, by_function),
    }


def _agreement(agreement: Agreement) -> dict:
    return {
        "pairwise": share_of_pairs(agreement.share, agreement.pairs.compared),
        "tau_b": agreement.tau_b,
        "ranking_pairs": agreement.ranking_pairs,
    }


def ranking_counts(project: Project) -> dict:
    """Rankings in all (people's: the AI judge's are counted apart), per day (UTC days, or TIME_ZONE's)
    and per labeler; how many people made from a page pre-filled with the judge's order."""
    rows = (
        Ranking.objects.filter(task__project=project)
        .annotate(day=TruncDate("created_at"))
        .values("day", "labeler__username", "ai")
        .annotate(n=Count("id"), prefilled=Count("id", filter=Q(suggestion__has_key="shown")))
        .order_by("day", "labeler__username")
    )
    per_day: dict[str, dict[str, int]] = {}
    per_labeler: dict[str, int] = defaultdict(int)
    ai = prefilled = 0
    for row in rows:
        per_day.setdefault(row["day"].isoformat(), {})[row["labeler__username"]] = row["n"]
        per_labeler[row["labeler__username"]] += row["n"]
        ai += row["n"] if row["ai"] else 0
        prefilled += row["prefilled"]
    return {
        "total": sum(per_labeler.values()) - ai,
        "ai": ai,
        "prefilled": prefilled,
        "per_day": [{"day": day, "count": sum(by.values()), "by_labeler": by} for day, by in per_day.items()],
        "per_labeler": dict(sorted(per_labeler.items())),
    }


def labeler_rows(project: Project, quality: dict, counts: dict[str, int]) -> list[dict]:
    """Per labeler: rankings, agreement with the others, gold accuracy, the RM's agreement with
    them on fresh labels, and whether they are flagged (and why)."""
    by_rm = (
        RankingScore.objects.filter(reward_model__project=project)
        .values("ranking__labeler__username")
        .annotate(agreed=Sum("agreed"), pairs=Sum("pairs"))
    )
    rm = {row["ranking__labeler__username"]: row for row in by_rm}
    rows = []
    for name in sorted(counts.keys() | quality.keys()):
        figures = quality.get(name)
        agreement = figures.agreement if figures else Agreement()
        gold = figures.gold if figures else PairCounts()
        flags = figures.flags(project.agreement_threshold) if figures else []
        rm_row = rm.get(name, {})
        rows.append(
            {
                "labeler": name,
                "ai": bool(figures and figures.ai),
                "rankings": counts.get(name, 0),
                "agreement": share_of_pairs(agreement.share, agreement.pairs.compared),
                "tau_b": agreement.tau_b,
                "gold_accuracy": share_of_pairs(gold.share, gold.compared),
                "gold_rankings": figures.gold_rankings if figures else 0,
                "rm_agreement": _counted(rm_row.get("agreed"), rm_row.get("pairs")),
                "weight": figures.weight if figures else 1.0,
                "flagged": bool(flags),
                "flags": flags,
            }
        )
    return rows


def reward_model_rows(project: Project) -> list[dict]:
    """Per RM version: held-out accuracy at training time, and agreement with the fresh rankings
    it scored before the next version trained on them."""
    fresh = (
        RankingScore.objects.filter(reward_model__project=project)
        .values("reward_model")
        .annotate(agreed=Sum("agreed"), pairs=Sum("pairs"), rankings=Count("id"))
    )
    by_version = {row["reward_model"]: row for row in fresh}
    versions = list(RewardModelVersion.objects.filter(project=project).order_by("version"))
    rows = []
    for version in versions:
        row = by_version.get(version.pk, {})
        heldout, train = version.metrics.get("heldout", {}), version.metrics.get("train", {})
        rows.append(
            {
                "version": version.version,
                # the pair counts are in `metrics` for versions trained since they were recorded
                "heldout_accuracy": share_of_pairs(version.heldout_accuracy, heldout.get("pairs")),
                "train_accuracy": share_of_pairs(version.accuracy, train.get("pairs")),
                "tie_rate": version.tie_rate,
                "trained_on_rankings": version.rankings_count,
                "trained_through_ranking_id": version.trained_through_ranking_id,
                "fresh_accuracy": _counted(row.get("agreed"), row.get("pairs")),
                "fresh_rankings": row.get("rankings") or 0,
                "created_at": version.created_at.isoformat(),
                "heldout_spread": heldout.get("spread"),
                "calibration": heldout.get("calibration", []),
            }
        )
    if versions:
        rows[-1]["unscored_fresh_rankings"] = fresh_rankings(versions[-1]).count()
    return rows


def ppo_curves(project: Project) -> list[dict]:
    """Each PPO run's score and KL per step, runs one after another on a common step axis."""
    runs = list(
        TrainingRun.objects.filter(
            project=project,
            kind=TrainingRun.Kind.PPO,
            status__in=[TrainingRun.Status.SUCCEEDED, TrainingRun.Status.RUNNING],
        )
        .order_by("id")
        .only("id", "policy_id", "metrics", "status")
    )
    policies = PolicyVersion.objects.filter(project=project).values_list("pk", "version", "created_by_run_id")
    version_of = {pk: version for pk, version, _ in policies}
    made_by = {run_id: version for _, version, run_id in policies if run_id}
    curves, offset = [], 0
    for run in runs:
        steps = [m for m in run.metrics if m.get("score") is not None]
        start, made = version_of.get(run.policy_id), made_by.get(run.pk)
        curves.append(
            {
                "run": run.pk,
                "status": run.status,
                "from_version": start,
                "policy_version": made,
                "label": f"v{start} → v{made}" if made is not None else f"v{start} → (run {run.pk})",
                "steps": [
                    {"step": m["step"], "global_step": offset + m["step"], "score": m["score"], "kl": m.get("kl")}
                    for m in steps
                ],
            }
        )
        offset += max((m["step"] for m in steps), default=0)
    return curves


def win_rates(project: Project) -> list[dict]:
    """Per pair of policy versions a blind evaluation compared: the Bradley–Terry win rate of b
    (the newer side) over a, ties counting half, with its 95% Wilson interval over rankings (each
    ranking of an eval task is one pair of answers)."""
    pairs = (
        EvalPair.objects.filter(run__project=project)
        .values("version_a_id", "version_b_id", "version_a__version", "version_b__version")
        .annotate(tasks=Count("id"))
        .order_by("version_b__version", "version_a__version")
    )
    rankings = Ranking.objects.filter(task__eval_pair__run__project=project, excluded=False).values_list(
        "task__eval_pair__version_a_id", "task__eval_pair__version_b_id", "order"
    )
    version_of = dict(
        Completion.objects.filter(task_items__task__eval_pair__run__project=project).values_list(
            "pk", "policy_version_id"
        )
    )
    outcomes: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])  # b's wins, ties, losses
    for a_id, b_id, order in rankings:
        tally = outcomes[(a_id, b_id)]
        if len(order) == 1:
            tally[1] += 1
        else:
            tally[0 if version_of[order[0][0]] == b_id else 2] += 1
    rows = []
    for pair in pairs:
        result = win_rate(*outcomes[(pair["version_a_id"], pair["version_b_id"])])
        a, b = pair["version_a__version"], pair["version_b__version"]
        rows.append(
            {
                "a": a,
                "b": b,
                "label": f"v{b} vs v{a}",
                "tasks": pair["tasks"],
                "wins": result.wins,
                "ties": result.ties,
                "losses": result.losses,
                "win_rate": share_of_pairs(result.estimate, result.n),
                "strength": result.strength,
            }
        )
    return rows


def eval_label(a: int, b: int, best_of: int) -> str:
    """How an evaluation by a function names its sides: "v2 over v0", or "v0 best-of-8 over v0"."""
    return f"v{b} best-of-{best_of} over v{a}" if best_of > 1 else f"v{b} over v{a}"


def preference_evals(project: Project) -> list[dict]:
    """Per finished evaluation by a preference function (`manage.py evaluate_policy`), oldest first:
    b's win rate over a on its prompts (one pair of answers each) with a 95% Wilson interval, and for
    best-of-n (b's best of n samples by a reward model, no RL) n and that reward model's version."""
    runs = (
        TrainingRun.objects.filter(project=project, kind=TrainingRun.Kind.EVAL, status=TrainingRun.Status.SUCCEEDED)
        .values("pk", "preference", "baseline__version", "policy__version", "metrics")
        .order_by("id")
    )
    rows = []
    for run in runs:
        figures = run["metrics"][-1]
        best_of = figures.get("best_of", 1)  # runs stored before --best-of have none
        a, b = run["baseline__version"], run["policy__version"]
        rows.append(
            {
                "run": run["pk"],
                "a": a,
                "b": b,
                "best_of": best_of,
                "reward_model_version": figures.get("reward_model_version"),
                "label": eval_label(a, b, best_of),
                "preference": run["preference"],
                "win_rate": share_of_pairs(figures["win_rate_b_over_a"], figures["n"]),
                "mean_score_a": figures["mean_score_a"],
                "mean_score_b": figures["mean_score_b"],
            }
        )
    return rows


def learning_curve(
    project: Project, reward_models: list[dict], blind: list[dict], by_function: list[dict]
) -> list[dict]:
    """Per policy version after the base, against the training rankings the project had when it was
    made: its win rate over the base (v0) from blind human evaluations and from the latest
    evaluation by a preference function (each `None`-shared when there is none), the fresh-label
    accuracy of the reward model it was trained against, its status, and the promotion gate's
    checks that kept it back. Rankings are people's: the AI judge's are not labels anyone paid for."""
    before = (
        training_rankings(project)
        .filter(ai=False, created_at__lte=OuterRef("created_at"))
        .order_by()
        .values("task__project")
    )
    versions = list(
        PolicyVersion.objects.filter(project=project, version__gt=0)
        .select_related("reward_model", "created_by_run")
        .annotate(rankings=Coalesce(Subquery(before.annotate(n=Count("pk")).values("n")), 0))
        .order_by("version")
    )
    fresh = {row["version"]: row["fresh_accuracy"] for row in reward_models}
    human = {row["b"]: row["win_rate"] for row in blind if row["a"] == 0}
    function = {row["b"]: row["win_rate"] for row in by_function if row["a"] == 0 and row["best_of"] == 1}
    nothing = share_of_pairs(None, 0)
    return [
        {
            "version": policy.version,
            "status": policy.status,
            "made_by": policy.created_by_run.kind if policy.created_by_run else None,
            "rankings": policy.rankings,
            "win_rate_over_base_human": human.get(policy.version, nothing),
            "win_rate_over_base_function": function.get(policy.version, nothing),
            "reward_model_version": policy.reward_model.version if policy.reward_model else None,
            "reward_model_fresh_accuracy": fresh.get(policy.reward_model.version, nothing)
            if policy.reward_model
            else nothing,
            "gate_failed": [check for check in policy.gate if not check["passed"]],
        }
        for policy in versions
    ]
