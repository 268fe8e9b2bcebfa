from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from labeling.models import Assignment, ComparisonTask, Demonstration, Ranking
from labeling.services import do_assign_next_task, do_skip_task, do_store_demonstration, do_submit_ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def order_of(task: ComparisonTask) -> list[list[int]]:
    return [[c.pk] for c in task.display_completions()]


def expire(assignment: Assignment) -> None:
    Assignment.objects.filter(pk=assignment.pk).update(leased_until=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def project():
    return ProjectFactory(k=2, overlap=1)


def test_it_hands_out_the_oldest_open_task_with_a_lease(project, labeler):
    first, _ = ComparisonTaskFactory.create_batch(2, prompt__project=project)
    assignment = do_assign_next_task(project, labeler)
    assert assignment.task == first
    assert assignment.state == Assignment.State.LEASED
    expected = timezone.now() + timedelta(seconds=project.lease_seconds)
    assert abs((assignment.leased_until - expected).total_seconds()) < 5


def test_asking_again_returns_the_lease_already_held(project, labeler):
    ComparisonTaskFactory.create_batch(2, prompt__project=project)
    assert do_assign_next_task(project, labeler) == do_assign_next_task(project, labeler)
    assert Assignment.objects.count() == 1


def test_a_leased_task_is_not_handed_to_a_second_labeler_at_overlap_1(project, labeler, other_labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    assert do_assign_next_task(project, labeler).task == task
    assert do_assign_next_task(project, other_labeler) is None


def test_a_labeler_never_gets_a_task_they_ranked_or_skipped(labeler):
    project = ProjectFactory(k=2, overlap=3)
    ranked, skipped = ComparisonTaskFactory.create_batch(2, prompt__project=project)
    assert do_assign_next_task(project, labeler).task == ranked
    do_submit_ranking(ranked.pk, labeler, order_of(ranked))
    assert do_assign_next_task(project, labeler).task == skipped
    do_skip_task(skipped.pk, labeler, "I cannot judge this topic")
    assert do_assign_next_task(project, labeler) is None


def test_an_expired_lease_returns_the_task_to_the_pool(project, labeler, other_labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    expire(do_assign_next_task(project, labeler))
    assert do_assign_next_task(project, other_labeler).task == task


def test_a_late_submit_is_kept_while_the_task_still_needs_a_ranking(project, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    expire(do_assign_next_task(project, labeler))
    ranking, created = do_submit_ranking(task.pk, labeler, order_of(task))
    assert created
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.COMPLETE


def test_a_late_submit_is_refused_with_a_reason_once_another_labeler_took_the_slot(project, labeler, other_labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    expire(do_assign_next_task(project, labeler))
    do_assign_next_task(project, other_labeler)
    with pytest.raises(ValidationError, match="Your time on this task ran out") as error:
        do_submit_ranking(task.pk, labeler, order_of(task))
    assert error.value.code == "lease_expired"
    do_submit_ranking(task.pk, other_labeler, order_of(task))
    assert list(Ranking.objects.values_list("labeler", flat=True)) == [other_labeler.pk]


def test_a_task_from_a_retired_policy_is_not_handed_out(project, labeler):
    ComparisonTaskFactory(prompt__project=project, state=ComparisonTask.State.RETIRED)
    assert do_assign_next_task(project, labeler) is None


def test_tasks_of_other_projects_are_not_handed_out(project, labeler):
    ComparisonTaskFactory(k=2)
    assert do_assign_next_task(project, labeler) is None


@pytest.mark.parametrize(("ratio", "kind"), [(0.0, "train"), (1.0, "eval")])
def test_the_eval_ratio_picks_the_kind(ratio, kind, labeler):
    project = ProjectFactory(k=2, eval_ratio=ratio)
    ComparisonTaskFactory(prompt__project=project, kind="train")
    ComparisonTaskFactory(prompt__project=project, kind="eval")
    assert do_assign_next_task(project, labeler).task.kind == kind


def test_the_other_kind_is_handed_out_when_the_preferred_one_runs_out(labeler):
    project = ProjectFactory(k=2, eval_ratio=1.0)
    task = ComparisonTaskFactory(prompt__project=project, kind="train")
    assert do_assign_next_task(project, labeler).task == task


def test_the_eval_ratio_mixes_kinds_in_proportion():
    project = ProjectFactory(k=2, eval_ratio=0.25)
    ComparisonTaskFactory.create_batch(60, prompt__project=project, kind="train")
    ComparisonTaskFactory.create_batch(60, prompt__project=project, kind="eval")
    kinds = []
    for n in range(80):
        labeler = UserFactory(username=f"mix{n}")
        kinds.append(do_assign_next_task(project, labeler).task.kind)
    assert 8 <= kinds.count("eval") <= 34  # 20 expected; far outside this is a bug, not bad luck


def test_a_skip_needs_a_reason_and_stores_it(project, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    do_assign_next_task(project, labeler)
    with pytest.raises(ValidationError, match="Say why"):
        do_skip_task(task.pk, labeler, "  ")
    do_skip_task(task.pk, labeler, "The prompt is broken or unclear")
    assignment = Assignment.objects.get()
    assert (assignment.state, assignment.skip_reason) == ("skipped", "The prompt is broken or unclear")
    with pytest.raises(ValidationError, match="You skipped this task"):
        do_submit_ranking(task.pk, labeler, order_of(task))


def test_a_demonstration_submitted_twice_is_stored_once(labeler):
    prompt = PromptFactory(needs_demonstration=True)
    first = do_store_demonstration(prompt, labeler, "Ideal.")
    assert do_store_demonstration(prompt, labeler, "Ideal.") == first
    with pytest.raises(ValidationError, match="already wrote"):
        do_store_demonstration(prompt, labeler, "Different.")
    assert Demonstration.objects.count() == 1


def test_a_labeler_whose_lease_expired_gets_the_task_again_on_the_same_row(project, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    first = do_assign_next_task(project, labeler)
    expire(first)
    again = do_assign_next_task(project, labeler)
    assert (again.pk, again.task) == (first.pk, task)
    stored = Assignment.objects.get()
    assert stored.state == Assignment.State.LEASED and stored.leased_until > timezone.now()
