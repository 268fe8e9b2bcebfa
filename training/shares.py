"""Shares of pairs (accuracy, agreement, win rate) as the dashboard, the API and project_report
give them: pure, no Django.

A share measured on few pairs says little: 8 right of 10 has a 95% Wilson interval of 49% to 94%.
So every such figure travels with the number of pairs behind it and its interval, and below
`MIN_PAIRS_TO_TELL` pairs its share is withheld (None) while the count and interval are still given:

    {"share": 0.62, "pairs": 40, "low": 0.465, "high": 0.754}   # enough pairs
    {"share": None, "pairs": 12, "low": 0.468, "high": 0.911}   # 9 of 12: too few pairs to tell
    {"share": None, "pairs": 0, "low": None, "high": None}      # nothing measured
    {"share": 0.7, "pairs": None, "low": None, "high": None}    # count not recorded (older rows)
"""

from training.win_rate import wilson_interval

MIN_PAIRS_TO_TELL = 20
"""Fewer pairs than this and a share is not given (nor a labeler flagged on it): at 10 of 20 the 95%
interval still runs from 30% to 70%."""


def share_of_pairs(share: float | None, pairs: int | None, min_pairs: int = MIN_PAIRS_TO_TELL) -> dict:
    """A share with its count and 95% Wilson interval, the share withheld under `min_pairs` pairs.

    `pairs` None means the count was not recorded: the share is given as it is, with no interval.
    """
    if pairs is None and share is not None:
        return {"share": share, "pairs": None, "low": None, "high": None}
    if not pairs or share is None:
        return {"share": None, "pairs": pairs or 0, "low": None, "high": None}
    low, high = wilson_interval(share, pairs)
    return {"share": share if pairs >= min_pairs else None, "pairs": pairs, "low": low, "high": high}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit.removesuffix('s') if n == 1 else unit}"


def share_text(fig: dict | None, unit: str = "pairs") -> str:
    """The share alone: "62%", "too few pairs to tell", or "–" with nothing measured."""
    if not fig or (fig["share"] is None and not fig["pairs"]):
        return "–"
    return f"{fig['share']:.0%}" if fig["share"] is not None else f"too few {unit} to tell"


def evidence_text(fig: dict | None, unit: str = "pairs") -> str:
    """What the share rests on: "95% CI 47–75%, 40 pairs"; under the minimum, "12 pairs"."""
    if not fig or (fig["share"] is None and not fig["pairs"]):
        return ""
    if fig["pairs"] is None:
        return f"number of {unit} not recorded"
    if fig["share"] is None:
        return _count(fig["pairs"], unit)
    low, high = f"{fig['low']:.0%}".removesuffix("%"), f"{fig['high']:.0%}"
    return f"95% CI {low}–{high}, {_count(fig['pairs'], unit)}"


def figure_text(fig: dict | None, unit: str = "pairs") -> str:
    """One line: "62% (95% CI 47–75%, 40 pairs)", "too few pairs to tell (12 pairs)", or "–"."""
    share, evidence = share_text(fig, unit), evidence_text(fig, unit)
    return f"{share} ({evidence})" if evidence else share
