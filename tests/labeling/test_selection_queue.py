"""Uncertainty selection in the task queue, on the real PostgreSQL: the most disputed eligible
training task first, with leases, overlap and "never the same task twice" as before."""

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from labeling.admin import ComparisonTaskAdmin
from labeling.models import ComparisonTask, Project
from labeling.services import available_tasks, do_assign_next_task, do_skip_task, do_submit_ranking, queue_order
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def rank(assignment, labeler):
    do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in assignment.task.display_completions()])


@pytest.fixture
def project():
    return ProjectFactory(k=2, overlap=1, selection=Project.Selection.UNCERTAINTY)


def tasks_with(project, scores, kind="train"):
    return [ComparisonTaskFactory(prompt__project=project, kind=kind, uncertainty=s) for s in scores]


def test_the_next_task_is_the_most_uncertain_eligible_one(project):
    low, high, unscored, middle, top = tasks_with(project, [0.1, 0.8, None, 0.5, 0.9])
    first, second = UserFactory(), UserFactory()
    assert do_assign_next_task(project, first).task == top  # leased to `first` now
    assert do_assign_next_task(project, second).task == high  # `top` is taken at overlap 1
    rank(do_assign_next_task(project, second), second)
    assert do_assign_next_task(project, second).task == middle
    do_skip_task(middle.pk, second, "unclear")
    assert do_assign_next_task(project, second).task == low
    rank(do_assign_next_task(project, second), second)
    assert do_assign_next_task(project, second).task == unscored  # unscored tasks come last
    rank(do_assign_next_task(project, second), second)
    assert do_assign_next_task(project, second) is None  # `top` is first's, `middle` was skipped


def test_with_overlap_2_each_labeler_walks_the_tasks_most_uncertain_first_and_never_twice(project):
    project.overlap = 2
    project.save()
    scores = [0.3, 0.7, 0.1, 0.9, 0.5]
    tasks = [ComparisonTaskFactory(prompt__project=project, uncertainty=s, target_overlap=2) for s in scores]
    expected = [t.pk for t in sorted(tasks, key=lambda t: -t.uncertainty)]
    for labeler in (UserFactory(), UserFactory()):
        seen = []
        while (assignment := do_assign_next_task(project, labeler)) is not None:
            seen.append(assignment.task_id)
            rank(assignment, labeler)
        assert seen == expected
    assert do_assign_next_task(project, UserFactory()) is None  # every task has its 2 rankings


def test_control_tasks_come_before_every_disputed_one_oldest_first(project):
    disputed, older_control, unscored = tasks_with(project, [0.9, 0.1, None])
    newer_control = ComparisonTaskFactory(prompt__project=project, uncertainty=None, chosen_by="control")
    ComparisonTask.objects.filter(pk=older_control.pk).update(chosen_by="control")
    labeler = UserFactory()
    handed = []
    while (assignment := do_assign_next_task(project, labeler)) is not None:
        handed.append(assignment.task_id)
        rank(assignment, labeler)
    assert handed == [older_control.pk, newer_control.pk, disputed.pk, unscored.pk]


def test_eval_tasks_keep_their_sampled_order_and_the_eval_mix(project):
    project.eval_ratio = 1.0  # eval first whenever there is one
    project.save()
    evals = tasks_with(project, [0.1, 0.9], kind="eval")
    train = tasks_with(project, [0.5])
    labeler = UserFactory()
    handed = []
    while (assignment := do_assign_next_task(project, labeler)) is not None:
        handed.append(assignment.task)
        rank(assignment, labeler)
    assert handed == [*evals, *train]  # eval by age, whatever their scores


def test_random_selection_ignores_the_scores(project):
    project.selection = Project.Selection.RANDOM
    project.save()
    tasks = tasks_with(project, [0.1, 0.9, 0.5])
    labeler = UserFactory()
    assert do_assign_next_task(project, labeler).task == tasks[0]


@pytest.mark.parametrize(
    ("selection", "index"), [(Project.Selection.UNCERTAINTY, "task_open_uncertain"), ("random", "task_open_queue")]
)
def test_the_queue_walks_its_own_partial_index_without_a_sort(project, selection, index):
    project.selection = selection
    project.save()
    tasks_with(project, [0.2, 0.4])
    labeler = UserFactory()
    query = (
        available_tasks(labeler, timezone.now())
        .filter(project=project, kind="train")
        .order_by(*queue_order(project, "train"))[:1]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # two rows: the planner would rather read the table
        plan = query.explain()
    assert f"Index Scan using {index}" in plan and "Sort" not in plan


def test_staff_see_each_tasks_score_in_the_admin_sorted_most_uncertain_first(client, admin_user, project):
    low, high = tasks_with(project, [0.125, 0.875])
    client.force_login(admin_user)
    url = reverse("admin:labeling_comparisontask_changelist")
    index = list(ComparisonTaskAdmin.list_display).index("uncertainty") + 1
    body = client.get(url, {"o": f"-{index}"}).content.decode()
    assert "0.875" in body and body.index(f">{high.pk}<") < body.index(f">{low.pk}<")
    change = client.get(reverse("admin:labeling_comparisontask_change", args=[high.pk])).content.decode()
    assert "0.875" in change and 'name="uncertainty"' not in change  # shown, not editable
