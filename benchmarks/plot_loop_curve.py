"""The learning curves of benchmarks/loop_curve.py as one PNG: per preference, the active policy's win
rate over the base (with its 95% interval) against the rankings so far, one line per arm (and per
recipe variant, when runs name one), averaged over seeds where there are several.

    .venv/bin/pip install -r benchmarks/requirements.txt   # matplotlib
    .venv/bin/python benchmarks/plot_loop_curve.py var/loop-curve/results.jsonl -o docs/img/loop-curve.png
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402


def curves(runs: list[dict]) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """preference -> line label -> [(rankings, win rate, low, high)], seeds averaged point by point."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        variant = f" {run['variant']}" if run.get("variant") else ""
        grouped[(run["preference"].rsplit(":", 1)[-1], f"{run['arm']}{variant}")].append(run)
    out: dict[str, dict[str, list]] = defaultdict(dict)
    for (preference, label), group in grouped.items():
        points = []
        for rounds in zip(*(run["rounds"] for run in group), strict=False):
            wins = [r["win_over_base"] or {"share": 0.5, "low": 0.5, "high": 0.5} for r in rounds]  # v0: a tie
            means = [sum(w[key] for w in wins) / len(wins) for key in ("share", "low", "high")]
            points.append((sum(r["rankings"] for r in rounds) / len(rounds), *means))
        out[preference][f"{label} ({len(group)} seed{'s' if len(group) > 1 else ''})"] = [(0, 0.5, 0.5, 0.5), *points]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    runs = [json.loads(line) for path in args.results for line in path.read_text().splitlines() if line.strip()]
    by_preference = curves(runs)
    figure, axes = plt.subplots(1, len(by_preference), figsize=(5 * len(by_preference), 4), squeeze=False)
    for ax, (preference, lines) in zip(axes[0], sorted(by_preference.items()), strict=True):
        for label, points in sorted(lines.items()):
            xs, ys, lows, highs = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=label)
            ax.fill_between(xs, lows, highs, alpha=0.15)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set(title=preference, xlabel="rankings so far", ylabel="win rate over v0 (48 held-out prompts)", ylim=(0, 1))
        ax.legend(fontsize="small")
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
