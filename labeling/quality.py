"""Labeler quality from the stored rankings: agreement on tasks ranked by two or more labelers,
and accuracy on gold tasks. The maths is in labeling.statistics; this module fetches the rows.

Gold tasks are left out of agreement (every labeler ranks them, so they would dominate it) and
measured against their expected order instead. Rankings staff excluded from training still
count here: they say something about their labeler.

The AI judge is measured against people only: its agreement is with the human rankings of the tasks
it ranked too, and people's agreement is among people. Rankings made from a page pre-filled with the
judge's order are anchored on it, so they are left out of both (they still train, and count for gold).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from labeling.models import ComparisonTask, Judge, Project, Ranking
from labeling.statistics import (
    MIN_PAIRS_TO_TELL,
    Agreement,
    PairCounts,
    earned_weight,
    gold_accuracy,
    overlap_agreement,
    reliability_weights,
    share_of_pairs,
)

MIN_PAIRS_TO_FLAG = MIN_PAIRS_TO_TELL
"""A labeler is judged once this many pairs were compared, as many as the dashboard needs to show a
share at all: one K=4 task (6 pairs) is far too few."""


@dataclass
class LabelerQuality:
    labeler: str
    agreement: Agreement = field(default_factory=Agreement)
    gold: PairCounts = field(default_factory=PairCounts)
    gold_rankings: int = 0
    weight: float = 1.0
    """Their rankings' weight in the reward model's loss: agreement and gold pairs pooled, relative to
    the project's most reliable labeler (labeling.statistics.reliability_weights); for the AI judge,
    earned from no weight up and capped (labeling.statistics.earned_weight)."""
    ai: bool = False
    """The project's AI judge: its agreement is with people, and it is never counted as one."""

    def flags(self, threshold: float) -> list[str]:
        """Why the labeler is flagged (empty when they are not)."""
        reasons = []
        if self.agreement.pairs.compared >= MIN_PAIRS_TO_FLAG and self.agreement.share < threshold:
            reasons.append(f"agreement with others {self.agreement.share:.0%} is below {threshold:.0%}")
        if self.gold.compared >= MIN_PAIRS_TO_FLAG and self.gold.share < threshold:
            reasons.append(f"gold accuracy {self.gold.share:.0%} is below {threshold:.0%}")
        return reasons


def _overlapping_tasks(tasks: QuerySet[ComparisonTask]) -> QuerySet[ComparisonTask]:
    """Non-gold tasks among `tasks` with two or more unanchored human rankings."""
    return (
        tasks.exclude(state=ComparisonTask.State.GOLD)
        .annotate(ranked=Count("rankings", filter=Q(rankings__ai=False, rankings__suggestion={})))
        .filter(ranked__gte=2)
        .values("pk")
    )


def _unanchored_human() -> QuerySet[Ranking]:
    """People's rankings made without the judge's order pre-filled: what agreement is measured on."""
    return Ranking.objects.filter(ai=False, suggestion={})


def _by_task(rows: Iterable[tuple[int, object, list]]) -> dict[int, list[tuple[object, list]]]:
    tasks: dict[int, list[tuple[object, list]]] = {}
    for task_id, labeler, order in rows:
        tasks.setdefault(task_id, []).append((labeler, order))
    return tasks


def judge_agreement(project: Project, judge: str | None = None) -> dict[str, Agreement]:
    """Each AI labeler's agreement with people (the project's judge, named by `judge`, and any whose
    rankings remain): its order against each unanchored human ranking of the non-gold tasks both
    ranked (1 query, 2 when there are AI rankings)."""
    judged = Ranking.objects.filter(task__project=project, ai=True).exclude(task__state=ComparisonTask.State.GOLD)
    orders: dict[int, list[tuple[str, list]]] = {}
    agreement = {judge: Agreement()} if judge else {}
    for task_id, name, order in judged.values_list("task_id", "labeler__username", "order"):
        orders.setdefault(task_id, []).append((name, order))
        agreement.setdefault(name, Agreement())
    if orders:
        human = _unanchored_human().filter(task_id__in=orders.keys()).order_by("task", "id")
        for task_id, order in human.values_list("task_id", "order"):
            for name, judge_order in orders[task_id]:
                agreement[name].add(judge_order, order)
    return agreement


def labeler_quality(project: Project) -> tuple[Agreement, dict[str, LabelerQuality]]:
    """The project's overall agreement among people and each labeler's quality (AI judges' too,
    marked), keyed by username (a fixed number of queries)."""
    overlapping = _overlapping_tasks(ComparisonTask.objects.filter(project=project))
    rows = (
        _unanchored_human()
        .filter(task__in=overlapping)
        .order_by("task", "id")
        .values_list("task_id", "labeler__username", "order")
    )
    overall, per_labeler = overlap_agreement(_by_task(rows).values())
    quality = {name: LabelerQuality(name, agreement) for name, agreement in per_labeler.items()}
    judge = Judge.objects.filter(project=project).values_list("account__username", "weight_cap").first()
    name_of_judge, cap = judge or (None, Judge._meta.get_field("weight_cap").default)
    for name, agreement in judge_agreement(project, name_of_judge).items():
        quality[name] = LabelerQuality(name, agreement, ai=True)
    gold = Ranking.objects.filter(task__project=project, task__state=ComparisonTask.State.GOLD)
    for name, expected, order in gold.values_list("labeler__username", "task__gold_order", "order"):
        row = quality.setdefault(name, LabelerQuality(name))
        row.gold += gold_accuracy(expected, order)
        row.gold_rankings += 1
    people = {name: row.agreement.pairs + row.gold for name, row in quality.items() if not row.ai}
    weights = reliability_weights(people)
    for name, row in quality.items():
        row.weight = earned_weight(row.agreement.pairs + row.gold, people, cap) if row.ai else weights[name]
    return overall, quality


def agreement_of(labeler: AbstractBaseUser, projects: QuerySet[Project]) -> dict[int, Agreement]:
    """The labeler's agreement with the others per project, where they share ranked tasks (1 query)."""
    ranked_by_them = Ranking.objects.filter(task=OuterRef("pk"), labeler=labeler)
    overlapping = _overlapping_tasks(ComparisonTask.objects.filter(Exists(ranked_by_them), project__in=projects))
    rows = (
        _unanchored_human()
        .filter(task__in=overlapping)
        .order_by("task", "id")
        .values_list("task__project_id", "task_id", "labeler_id", "order")
    )
    by_project: dict[int, list[tuple[int, int, list]]] = {}
    for project_id, task_id, labeler_id, order in rows:
        by_project.setdefault(project_id, []).append((task_id, labeler_id, order))
    figures = {}
    for project_id, project_rows in by_project.items():
        _, per_labeler = overlap_agreement(_by_task(project_rows).values())
        if labeler.pk in per_labeler:  # not when their own rankings there were all pre-filled
            figures[project_id] = per_labeler[labeler.pk]
    return figures


def labeler_weights(project: Project, people: bool = True) -> dict[str, float]:
    """Each labeler's weight in the reward model's loss, by username; labelers not listed weigh 1.
    AI judges are always listed: `people=False` (a recipe that does not weigh people) lists only them."""
    return {name: row.weight for name, row in labeler_quality(project)[1].items() if people or row.ai}


def flagged_labelers(project: Project) -> dict[str, list[str]]:
    """Labelers below the project's agreement threshold, with the reasons."""
    _, quality = labeler_quality(project)
    flagged = {name: row.flags(project.agreement_threshold) for name, row in quality.items()}
    return {name: reasons for name, reasons in sorted(flagged.items()) if reasons}


def with_agreement(projects: list[Project], labeler: AbstractBaseUser) -> list[Project]:
    """Sets `agreement` on each project: the labeler's agreement with the others there as a share of
    pairs (`labeling.statistics.share_of_pairs`), or None until they share a ranked task with someone
    (1 query for all projects)."""
    figures = agreement_of(labeler, Project.objects.filter(pk__in=[p.pk for p in projects]))
    for project in projects:
        figure = figures.get(project.pk)
        compared = figure.pairs.compared if figure is not None else 0
        project.agreement = share_of_pairs(figure.share, compared) if compared else None
    return projects
