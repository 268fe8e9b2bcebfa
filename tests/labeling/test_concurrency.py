"""Many labelers asking for work at once, on the real PostgreSQL (row locks, SKIP LOCKED)."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from labeling.models import Assignment, Project, Ranking
from labeling.services import do_assign_next_task, do_submit_ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LABELERS = 20


def run_at_once(work, labelers):
    barrier = threading.Barrier(len(labelers))

    def start(labeler):
        try:
            barrier.wait(timeout=30)
            return work(labeler)
        finally:
            connection.close()

    with ThreadPoolExecutor(len(labelers)) as pool:
        return list(pool.map(start, labelers))


def setup(overlap: int, selection: str = Project.Selection.RANDOM):
    project = ProjectFactory(k=2, overlap=overlap, selection=selection)
    for n in range(10):  # scores out of id order, so uncertainty selection walks its own index
        ComparisonTaskFactory(prompt__project=project, target_overlap=overlap, uncertainty=(n * 7 % 10) / 10)
    return project, [UserFactory(username=f"{project.pk}-concurrent{n}") for n in range(LABELERS)]


@pytest.mark.parametrize("selection", Project.Selection.values)
@pytest.mark.parametrize("round_", range(5))  # a race shows up in some rounds, not all
def test_20_labelers_on_10_tasks_with_overlap_1_get_10_distinct_tasks_and_10_nothing_left(round_, selection):
    project, labelers = setup(overlap=1, selection=selection)

    def ask(labeler):
        assignment = do_assign_next_task(project, labeler)
        return assignment.task_id if assignment else None

    results = run_at_once(ask, labelers)
    handed_out = [task_id for task_id in results if task_id is not None]
    assert len(handed_out) == 10 and len(set(handed_out)) == 10
    assert results.count(None) == 10
    assert Assignment.objects.filter(task__project=project).count() == 10


@pytest.mark.parametrize("selection", Project.Selection.values)
def test_with_overlap_2_no_labeler_ranks_a_task_twice_and_no_task_gets_more_than_2(selection):
    project, labelers = setup(overlap=2, selection=selection)

    def label_until_done(labeler):
        ranked = []
        while (assignment := do_assign_next_task(project, labeler)) is not None:
            order = [[c.pk] for c in assignment.task.display_completions()]
            do_submit_ranking(assignment.task_id, labeler, order)
            ranked.append(assignment.task_id)
        return ranked

    results = run_at_once(label_until_done, labelers)
    for ranked in results:
        assert len(ranked) == len(set(ranked))
    per_task = Counter(Ranking.objects.values_list("task_id", flat=True))
    assert max(per_task.values()) == 2
    assert sum(per_task.values()) == 20 == sum(len(r) for r in results)
    assert not Assignment.objects.exclude(state=Assignment.State.SUBMITTED).exists()
