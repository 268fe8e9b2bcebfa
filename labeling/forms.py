"""Reads the ranking form a browser posts (with or without JavaScript) into service arguments;
the admin's prompt import and export forms, and the task admin's form with its gold order.

Each completion has a `rank-<completion id>` field holding its rank number, 1 = best; equal
numbers are ties. `likert-<completion id>` holds an optional 1–7 score.
"""

from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from labeling.importing import FORMATS as IMPORT_FORMATS
from labeling.models import ComparisonTask
from labeling.services import check_gold_order


@dataclass
class RankingInput:
    order: list[list[int]]
    likert: dict[str, int] = field(default_factory=dict)
    rationale: str = ""
    flags: list[str] = field(default_factory=list)
    time_spent_ms: int | None = None


def _integer(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number, not {value[:20]!r}.", code="not_an_integer") from None


def _id_field(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix):
        return None
    return _integer(name.removeprefix(prefix), "A completion id")


def parse_ranking_form(data: QueryDict) -> RankingInput:
    """Raises ValidationError for a malformed form; the service checks the order against the task."""
    ranks: dict[int, int] = {}
    likert: dict[str, int] = {}
    for name, values in data.lists():
        if (cid := _id_field(name, "rank-")) is not None:
            values = [v for v in values if v.strip()]
            if len(values) > 1:
                raise ValidationError("Completion %(id)s is placed twice.", code="repeated", params={"id": cid})
            if values:
                ranks[cid] = _integer(values[0], "A rank")
        elif (cid := _id_field(name, "likert-")) is not None and values[-1].strip():
            likert[str(cid)] = _integer(values[-1], "A Likert score")
    groups: dict[int, list[int]] = {}
    for cid, rank in ranks.items():
        groups.setdefault(rank, []).append(cid)
    spent = data.get("time_spent_ms", "").strip()
    return RankingInput(
        order=[groups[rank] for rank in sorted(groups)],
        likert=likert,
        rationale=data.get("rationale", ""),
        flags=data.getlist("flags"),
        time_spent_ms=max(0, _integer(spent, "time_spent_ms")) if spent else None,
    )


def skip_reason(data: QueryDict) -> str:
    """The skip form's reason: one of its choices, or "Other: <the labeler's words>"; an "other"
    without words is refused."""
    reason = data.get("reason", "").strip()
    if reason != "other":
        return reason
    words = data.get("other", "").strip()
    if not words:
        raise ValidationError("Say in a few words why you skip it (the box under Other).", code="skip_reason")
    return f"Other: {words}"


class PromptImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV or text, UTF-8.")
    format = forms.ChoiceField(
        choices=[("", "From the file's extension")] + [(f, f) for f in IMPORT_FORMATS],
        required=False,
        help_text='JSONL: a "prompt" field per line. CSV: a "prompt" column. Text: one prompt per line. '
        "Other fields and columns are kept as the prompt's metadata.",
    )
    atomic = forms.BooleanField(
        required=False, label="All or nothing", help_text="Import nothing if any line is invalid."
    )


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[
            ("pairs", "Pairs: {prompt, chosen, rejected} (TRL reward/DPO trainers)"),
            ("rankings", "Rankings: one line per ranking, with provenance"),
        ],
        initial="pairs",
    )
    ties = forms.ChoiceField(
        choices=[("drop", "Drop tied pairs"), ("half", "Write tied pairs both ways (0.5 target)")],
        initial="drop",
        required=False,
        help_text="Pairs only.",
    )
    include_excluded = forms.BooleanField(required=False, label="Include rankings excluded from training")

    def clean_ties(self) -> str:
        return self.cleaned_data["ties"] or "drop"


class ComparisonTaskAdminForm(forms.ModelForm):
    """The task's admin form, with its gold order as a field checked like a ranking; the admin
    saves it through `do_set_gold_order`, which also moves the task in or out of the gold state."""

    expected_order = forms.JSONField(
        required=False,
        label="Gold: expected order",
        help_text="Makes this a gold task: tie groups of completion ids, best first, like [[12], [14, 11], [13]] "
        "(the ids are in the completions below). Labelers meet gold tasks at the project's gold rate, each "
        "once, and cannot tell them apart; their rankings measure gold accuracy and never train the reward "
        "model. Empty it to unmark a gold task no one has ranked yet.",
    )

    class Meta:
        model = ComparisonTask
        fields = ["project", "prompt", "policy_version", "kind", "target_overlap", "state"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["expected_order"].initial = self.instance.gold_order

    def clean_expected_order(self) -> list[list[int]] | None:
        order = self.cleaned_data["expected_order"]
        if self.instance.pk is None:
            if order:
                raise ValidationError("Save the task with its completions first, then set its gold order.")
            return None
        return check_gold_order(self.instance, order)
