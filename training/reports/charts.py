"""The dashboard's charts, built from `project_metrics`: each a title, axis labels and its series,
as static/js/run_charts.js draws them with uPlot.

A chart spec: `title`; `unit` (the y-axis label); `x_label`; `x` ("number", "time" in seconds,
or "category" with `categories` as tick labels at 0, 1, ...); `series` {name: [[x, y], ...]};
`styles` {name: "line" | "bars" | "points"}; `lines` (labelled horizontal reference lines);
`intervals` {name: [[x, low, high], ...]} drawn as whiskers; `y_range` and `percent` for shares.

Shares of pairs (`labeling.statistics`) are drawn only where there are enough pairs to tell; the tables
under the charts give every count.
"""

from datetime import UTC, date, datetime

MAX_LABELER_LINES = 8  # more than this many labelers: only the total per day is drawn
HUMAN, FUNCTION, BEST_OF_N = "human judges", "preference function: policy", "preference function: best-of-n"


def _day_seconds(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp())


def _points(xs: list, ys: list) -> list[list]:
    return [[x, y] for x, y in zip(xs, ys, strict=True) if y is not None]


def _shares(xs: list, figures: list[dict]) -> list[list]:
    """Points of the shares of pairs that have enough pairs behind them."""
    return _points(xs, [f["share"] for f in figures])


def _share_chart(title: str, unit: str, x_label: str, categories: list[str], **spec) -> dict:
    return {
        "title": title,
        "unit": unit,
        "x_label": x_label,
        "x": "category",
        "categories": categories,
        "y_range": [0, 1],
        "percent": True,
        **spec,
    }


def rankings_per_day(metrics: dict) -> dict:
    days = metrics["rankings"]["per_day"]
    xs = [_day_seconds(d["day"]) for d in days]
    series = {"all labelers": _points(xs, [d["count"] for d in days])}
    labelers = list(metrics["rankings"]["per_labeler"])
    if 1 < len(labelers) <= MAX_LABELER_LINES:
        for name in labelers:
            series[name] = _points(xs, [d["by_labeler"].get(name, 0) for d in days])
    return {
        "title": "Rankings per day",
        "unit": "rankings",
        "x_label": "day",
        "x": "time",
        "series": series if xs else {},
        "styles": {"all labelers": "bars"},
    }


def rankings_per_labeler(metrics: dict) -> dict:
    counts = metrics["rankings"]["per_labeler"]
    return {
        "title": "Rankings per labeler",
        "unit": "rankings",
        "x_label": "labeler",
        "x": "category",
        "categories": list(counts),
        "series": {"rankings": [[i, n] for i, n in enumerate(counts.values())]} if counts else {},
        "styles": {"rankings": "bars"},
    }


def labeler_agreement(metrics: dict) -> dict:
    rows = metrics["labelers"]
    xs = list(range(len(rows)))
    series = {
        "agreement with others": _shares(xs, [r["agreement"] for r in rows]),
        "gold accuracy": _shares(xs, [r["gold_accuracy"] for r in rows]),
        "RM agrees with them": _shares(xs, [r["rm_agreement"] for r in rows]),
    }
    threshold = metrics["project"]["agreement_threshold"]
    return _share_chart(
        "Labeler agreement, gold accuracy and RM agreement",
        "share of pairs",
        "labeler",
        [r["labeler"] + (" ⚑" if r["flagged"] else "") for r in rows],
        series={k: v for k, v in series.items() if v},
        styles={"agreement with others": "bars", "gold accuracy": "points", "RM agrees with them": "points"},
        lines=[{"label": f"flag threshold ({threshold:.0%})", "y": threshold}],
    )


def reward_model_accuracy(metrics: dict) -> dict:
    rows = metrics["reward_models"]
    xs = list(range(len(rows)))
    series = {
        "held-out accuracy": _shares(xs, [r["heldout_accuracy"] for r in rows]),
        "fresh-label accuracy": _shares(xs, [r["fresh_accuracy"] for r in rows]),
    }
    ceiling = metrics["agreement"]["pairwise"]["share"]
    lines = [{"label": "chance", "y": 0.5}]
    if ceiling is not None:
        lines.insert(0, {"label": "human–human agreement (ceiling)", "y": ceiling})
    return _share_chart(
        "Reward-model accuracy by version",
        "accuracy (share of pairs)",
        "reward-model version",
        [f"RM v{r['version']}" for r in rows],
        series={k: v for k, v in series.items() if v},
        lines=lines,
    )


def calibration(metrics: dict) -> dict:
    """The latest reward model's reliability diagram on its held-out pairs: predicted P(win) in bins
    against how often it came true; the diagonal is a calibrated model."""
    rows = [r for r in metrics["reward_models"] if r["calibration"]]
    series = {}
    if rows:
        latest = rows[-1]
        predicted = [b["predicted"] for b in latest["calibration"]]
        series = {
            f"RM v{latest['version']} ({latest['heldout_accuracy']['pairs']} pairs)": [
                [b["predicted"], b["observed"]] for b in latest["calibration"]
            ],
            "calibrated": [[x, x] for x in sorted({0.0, *predicted, 1.0})],  # a point at every x: one line
        }
    return {
        "title": "Reward-model calibration on held-out pairs",
        "unit": "share that won",
        "x_label": "predicted probability of winning",
        "series": series,
        "styles": {name: "points" for name in list(series)[:1]},
        "y_range": [0, 1],
        "percent": True,
    }


def ppo_curve(metrics: dict, key: str, title: str, unit: str) -> dict:
    series = {}
    for run in metrics["ppo_runs"]:
        points = [[s["global_step"], s[key]] for s in run["steps"] if s.get(key) is not None]
        if points:
            series[run["label"]] = points
    return {"title": title, "unit": unit, "x_label": "PPO step (rounds one after another)", "series": series}


def win_rates(metrics: dict) -> dict:
    """Blind human evaluations, then evaluations by a preference function, each its own series:
    best-of-n rows (the reward model picks of n samples, no RL) are the baseline RL has to beat."""
    rows = [(HUMAN, r) for r in metrics["win_rates"]]
    rows += [(BEST_OF_N if r["best_of"] > 1 else FUNCTION, r) for r in metrics["preference_evals"]]
    series: dict[str, list] = {}
    intervals: dict[str, list] = {}
    for i, (name, r) in enumerate(rows):
        if r["win_rate"]["share"] is not None:
            series.setdefault(name, []).append([i, r["win_rate"]["share"]])
            intervals.setdefault(name, []).append([i, r["win_rate"]["low"], r["win_rate"]["high"]])
    return _share_chart(
        "Win rate of b over a, with 95% intervals",
        "win rate of b over a",
        "b over a (humans: newer vs older)",
        [r["label"] for _, r in rows],
        series=series,
        styles={name: "points" for name in series},
        intervals=intervals,
        lines=[{"label": "no preference", "y": 0.5}],
    )


def learning_curve(metrics: dict) -> dict:
    """Each policy version's win rate over the base against the rankings the project had when it was
    made, by blind human evaluations and by a preference function, with the fresh-label accuracy of
    the reward model it was trained against: does each round leave the policy better?"""
    rows = metrics["learning_curve"]
    keys = {
        "win rate over v0: " + HUMAN: "win_rate_over_base_human",
        "win rate over v0: preference function": "win_rate_over_base_function",
        "its reward model's fresh-label accuracy": "reward_model_fresh_accuracy",
    }
    series: dict[str, list] = {}
    intervals: dict[str, list] = {}
    for name, key in keys.items():
        for row in rows:
            figure = row[key]
            if figure["share"] is not None:
                series.setdefault(name, []).append([row["rankings"], figure["share"]])
                intervals.setdefault(name, []).append([row["rankings"], figure["low"], figure["high"]])
    return {
        "title": "Learning curve: each policy version against the rankings so far",
        "unit": "share of pairs",
        "x_label": "training rankings when the version was made",
        "series": series,
        "styles": {name: "points" for name in series},
        "intervals": intervals,
        "lines": [{"label": "chance / no preference", "y": 0.5}],
        "y_range": [0, 1],
        "percent": True,
    }


def dashboard_charts(metrics: dict) -> list[dict]:
    return [
        rankings_per_day(metrics),
        rankings_per_labeler(metrics),
        labeler_agreement(metrics),
        reward_model_accuracy(metrics),
        calibration(metrics),
        ppo_curve(metrics, "score", "PPO reward-model score per step", "RM score (normalised)"),
        ppo_curve(metrics, "kl", "PPO KL to the reference per step", "KL per completion (nats)"),
        win_rates(metrics),
        learning_curve(metrics),
    ]
