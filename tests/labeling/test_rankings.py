import pytest
from django.core.exceptions import ValidationError

from labeling.models import Assignment, ComparisonTask, Ranking
from labeling.services import do_submit_ranking
from tests.factories import AssignmentFactory, ComparisonTaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def task():
    return ComparisonTaskFactory(k=4)


def submit(task: ComparisonTask, labeler, order, **kwargs):
    """Leases the task to the labeler (once) and submits."""
    if not Assignment.objects.filter(task=task, labeler=labeler).exists():
        AssignmentFactory(task=task, labeler=labeler)
    return do_submit_ranking(task.pk, labeler, order, **kwargs)


def ids(task: ComparisonTask) -> list[int]:
    return [c.pk for c in task.display_completions()]


def test_it_stores_the_full_order_with_ties(task, labeler):
    a, b, c, d = ids(task)
    ranking, created = submit(task, labeler, [[c], [a, d], [b]], likert={str(c): 7, a: 4})
    assert created
    ranking.refresh_from_db()
    assert ranking.order == [[c], [a, d], [b]]
    assert ranking.likert == {str(c): 7, str(a): 4}
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.COMPLETE


def test_the_same_ranking_submitted_twice_is_stored_once(task, labeler):
    a, b, c, d = ids(task)
    first, _ = submit(task, labeler, [[a], [b], [c], [d]])
    again, created = submit(task, labeler, [[a], [b], [c], [d]])
    assert not created and again.pk == first.pk
    assert Ranking.objects.count() == 1


def test_a_second_different_ranking_by_the_same_labeler_is_refused(task, labeler):
    a, b, c, d = ids(task)
    submit(task, labeler, [[a], [b], [c], [d]])
    with pytest.raises(ValidationError, match=f"already ranked task {task.pk}"):
        submit(task, labeler, [[d], [c], [b], [a]])
    assert list(Ranking.objects.values_list("order", flat=True)) == [[[a], [b], [c], [d]]]


def test_the_task_stays_open_until_its_overlap_is_reached(labeler, other_labeler):
    task = ComparisonTaskFactory(k=2, target_overlap=2)
    a, b = ids(task)
    submit(task, labeler, [[a], [b]])
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.OPEN
    submit(task, other_labeler, [[b], [a]])
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.COMPLETE


@pytest.mark.parametrize(
    ("make_order", "message"),
    [
        (lambda a, b, c, d, x: [[a], [b], [c]], r"Not every completion is ranked: D \(id \d+\) missing"),
        (lambda a, b, c, d, x: [[a], [b], [c], [d], [a]], r"Completion A \(id \d+\) is placed twice"),
        (lambda a, b, c, d, x: [[a, a], [b], [c], [d]], r"Completion A \(id \d+\) is placed twice"),
        (lambda a, b, c, d, x: [[a], [b], [c], [x]], r"Completion \d+ is not one of this task's completions"),
        (lambda a, b, c, d, x: [], "The ranking is empty"),
        (lambda a, b, c, d, x: None, "The ranking is empty"),
        (lambda a, b, c, d, x: [[a], [], [b, c, d]], "Rank 2 is empty"),
        (lambda a, b, c, d, x: [[a], ["b"], [c], [d]], "'b' at rank 2 is not a completion id"),
        (lambda a, b, c, d, x: [a, b, c, d], "Rank 1 is empty"),
    ],
)
def test_a_bad_order_is_refused_with_a_message_and_stores_nothing(task, labeler, make_order, message):
    other = ComparisonTaskFactory(k=4)
    foreign = ids(other)[0]
    with pytest.raises(ValidationError, match=message):
        submit(task, labeler, make_order(*ids(task), foreign))
    assert Ranking.objects.count() == 0
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.OPEN


@pytest.mark.parametrize("score", [0, 8, "5", True])
def test_a_likert_score_outside_1_to_7_is_refused(task, labeler, score):
    a, b, c, d = ids(task)
    with pytest.raises(ValidationError, match="is not 1–7"):
        submit(task, labeler, [[a], [b], [c], [d]], likert={str(a): score})
    assert Ranking.objects.count() == 0


def test_a_megabyte_rationale_is_refused(task, labeler):
    a, b, c, d = ids(task)
    with pytest.raises(ValidationError, match="the limit is 10,000"):
        submit(task, labeler, [[a], [b], [c], [d]], rationale="x" * 1_000_000)
    assert Ranking.objects.count() == 0


def test_an_unknown_flag_is_refused(task, labeler):
    a, b, c, d = ids(task)
    with pytest.raises(ValidationError, match="Flags must be some of"):
        submit(task, labeler, [[a], [b], [c], [d]], flags=["boring"])
    assert Ranking.objects.count() == 0
