"""Prints a project's quality figures as text tables, or `project_metrics` as JSON."""

import json

from django.core.management.base import BaseCommand

from labeling.management.commands._common import get_project
from labeling.statistics import figure_text as figure
from training.reports.metrics import project_metrics


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """Columns padded to their widest cell; an empty table says so."""
    if not rows:
        return "  (none yet)"
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join("  " + line.rstrip() for line in lines)


class Command(BaseCommand):
    help = "Print a project's labeler agreement, gold accuracy, reward-model accuracy, PPO and win-rate figures."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--json", action="store_true", help="Print the project_metrics dict as JSON.")

    def handle(self, *args, project: str, json: bool, **options) -> None:
        metrics = project_metrics(get_project(project))
        self.stdout.write(_json_dump(metrics) if json else report(metrics))


def _json_dump(metrics: dict) -> str:
    return json.dumps(metrics, indent=2, ensure_ascii=False)


LABELER_COLUMNS = [
    "labeler",
    "rankings",
    "agreement",
    "tau-b",
    "gold acc",
    "gold rankings",
    "RM agrees",
    "weight",
    "flag",
]
RM_COLUMNS = ["RM", "trained on", "held-out", "fresh", "fresh rankings", "waiting"]
PPO_COLUMNS = ["run", "policy", "steps", "first score", "last score", "last KL"]
WIN_COLUMNS = ["versions", "tasks", "win/tie/loss", "win rate"]
EVAL_COLUMNS = ["b over a", "judged by", "win rate", "b picked by"]
CURVE_COLUMNS = ["policy", "rankings", "over v0 (humans)", "over v0 (function)", "its RM on fresh rankings", "status"]


def _labeler_row(r: dict) -> list:
    flags = "; ".join(r["flags"]) or "-"
    return [r["labeler"], r["rankings"], figure(r["agreement"]), _num(r["tau_b"]), figure(r["gold_accuracy"]),
            r["gold_rankings"], figure(r["rm_agreement"]), f"{r['weight']:.2f}", flags]  # fmt: skip


def _rm_row(r: dict) -> list:
    return [f"v{r['version']}", r["trained_on_rankings"], figure(r["heldout_accuracy"]), figure(r["fresh_accuracy"]),
            r["fresh_rankings"], r.get("unscored_fresh_rankings", "-")]  # fmt: skip


def _ppo_row(run: dict) -> list:
    first, last = (run["steps"][0], run["steps"][-1]) if run["steps"] else ({}, {})
    return [run["run"], run["label"], len(run["steps"]), _num(first.get("score")), _num(last.get("score")),
            _num(last.get("kl"))]  # fmt: skip


def _win_row(r: dict) -> list:
    return [r["label"], r["tasks"], f"{r['wins']}/{r['ties']}/{r['losses']}", figure(r["win_rate"], "comparisons")]


def _eval_row(r: dict) -> list:
    picked = f"RM v{r['reward_model_version']}" if r["best_of"] > 1 else "-"
    return [r["label"], r["preference"], figure(r["win_rate"], "prompts"), picked]


def _curve_row(r: dict) -> list:
    rm = (
        f"v{r['reward_model_version']}: {figure(r['reward_model_fresh_accuracy'])}"
        if r["reward_model_version"]
        else "-"
    )
    kept = f" (kept back: {', '.join(c['name'] for c in r['gate_failed'])})" if r["gate_failed"] else ""
    return [f"v{r['version']}", r["rankings"], figure(r["win_rate_over_base_human"], "comparisons"),
            figure(r["win_rate_over_base_function"], "prompts"), rm, f"{r['status']}{kept}"]  # fmt: skip


def report(m: dict) -> str:
    agreement, threshold = m["agreement"], m["project"]["agreement_threshold"]
    sections = [
        f"Project {m['project']['name']} (id {m['project']['id']}): {m['rankings']['total']} rankings",
        f"Labeler agreement: {figure(agreement['pairwise'])} (pairs either labeler tied left out), "
        f"Kendall's tau-b {_num(agreement['tau_b'])} over {agreement['ranking_pairs']} pairs of rankings. "
        f"Shares on fewer than {m['project']['min_pairs_to_tell']} pairs are not given.",
        f"Labelers (flagged below {threshold:.0%})\n"
        + table(LABELER_COLUMNS, [_labeler_row(r) for r in m["labelers"]]),
        "Reward models (held-out at training; fresh = rankings scored before the next version trained on them)\n"
        + table(RM_COLUMNS, [_rm_row(r) for r in m["reward_models"]]),
        "PPO runs\n" + table(PPO_COLUMNS, [_ppo_row(run) for run in m["ppo_runs"]]),
        "Blind human evaluations (Bradley-Terry win rate of the newer version, ties half; 95% Wilson interval)\n"
        + table(WIN_COLUMNS, [_win_row(r) for r in m["win_rates"]]),
        "Evaluations by a preference function (best-of-n: b's best of n samples by a reward model, no RL)\n"
        + table(EVAL_COLUMNS, [_eval_row(r) for r in m["preference_evals"]]),
        "Learning curve (each policy version against the training rankings when it was made)\n"
        + table(CURVE_COLUMNS, [_curve_row(r) for r in m["learning_curve"]]),
    ]
    return "\n\n".join(sections)
