"""Gold tasks: marked by staff with an expected order, met by every labeler once at the project's
gold rate, indistinguishable on the page, scored as gold accuracy, and never trained on."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from labeling.models import ComparisonTask, Ranking
from labeling.quality import labeler_quality
from labeling.services import do_assign_next_task, do_set_gold_order, do_submit_ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory
from training.datasets import training_rankings

pytestmark = pytest.mark.django_db


def ids(task: ComparisonTask) -> list[int]:
    return [c.pk for c in task.display_completions()]


@pytest.fixture
def project():
    return ProjectFactory(k=3, overlap=1, gold_rate=1.0)


@pytest.fixture
def gold(project):
    task = ComparisonTaskFactory(prompt__project=project)
    a, b, c = ids(task)
    return do_set_gold_order(task, [[a], [b, c]])


def test_it_marks_a_task_gold_with_an_order_checked_like_a_ranking(project):
    task = ComparisonTaskFactory(prompt__project=project)
    a, b, c = ids(task)
    with pytest.raises(ValidationError, match=r"Not every completion is ranked: C \(id \d+\) missing"):
        do_set_gold_order(task, [[a], [b]])
    with pytest.raises(ValidationError, match="is not one of this task's completions"):
        do_set_gold_order(task, [[a], [b], [c], [999999]])
    task.refresh_from_db()
    assert (task.state, task.gold_order) == ("open", None)  # nothing stored half-way
    do_set_gold_order(task, [[c], [b, a]])
    task.refresh_from_db()
    assert (task.state, task.gold_order) == ("gold", [[c], [a, b]])  # ties in display order, as rankings


def test_an_eval_task_cannot_be_gold(project):
    task = ComparisonTaskFactory(prompt__project=project, kind="eval")
    with pytest.raises(ValidationError, match="Only a training comparison"):
        do_set_gold_order(task, [[cid] for cid in ids(task)])


def test_every_labeler_meets_a_gold_task_once_whatever_the_overlap(project, gold):
    labelers = UserFactory.create_batch(3)
    for labeler in labelers:
        assignment = do_assign_next_task(project, labeler)
        assert assignment.task == gold
        do_submit_ranking(gold.pk, labeler, gold.gold_order)
    assert Ranking.objects.filter(task=gold).count() == 3  # overlap is 1
    gold.refresh_from_db()
    assert gold.state == "gold"  # never "complete"
    assert do_assign_next_task(project, labelers[0]) is None  # each labeler gets it once


def test_a_reload_gives_the_held_gold_task_again(project, gold, labeler):
    first = do_assign_next_task(project, labeler)
    assert do_assign_next_task(project, labeler) == first


def test_gold_tasks_stay_out_of_the_ordinary_queue(project, gold, labeler):
    project.gold_rate = 0.0
    project.save()
    assert do_assign_next_task(project, labeler) is None
    ordinary = ComparisonTaskFactory(prompt__project=project)
    assert do_assign_next_task(project, labeler).task == ordinary


def test_gold_tasks_come_at_the_gold_rate(project):
    project.gold_rate = 0.25
    project.save()
    ComparisonTaskFactory.create_batch(80, prompt__project=project, k=2, target_overlap=80)
    gold = ComparisonTaskFactory(prompt__project=project, k=2)
    do_set_gold_order(gold, [[cid] for cid in ids(gold)])
    gold_count = sum(do_assign_next_task(project, UserFactory()).task == gold for _ in range(80))
    assert 8 <= gold_count <= 34  # 20 expected; far outside this is a bug, not bad luck


def test_a_gold_task_looks_like_any_other_task(client, project, gold, labeler):
    project.labelers.add(labeler)
    client.force_login(labeler)
    response = client.get(reverse("labeling:next", args=[project.pk]))
    assert response["Location"] == reverse("labeling:task", args=[gold.pk])
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"gold" not in page.content.lower()


def test_gold_accuracy_counts_the_expected_orders_pairs(project, gold):
    a, b, c = ids(gold)  # gold: a > b = c; its strict pairs are (a,b) and (a,c)
    right, half, wrong = UserFactory.create_batch(3)
    for labeler, order in [(right, [[a], [c], [b]]), (half, [[b], [a], [c]]), (wrong, [[b, c], [a]])]:
        do_assign_next_task(project, labeler)
        do_submit_ranking(gold.pk, labeler, order)
    _, quality = labeler_quality(project)
    # right: (a,b) and (a,c) as gold -> 2/2.  half: b > a wrong, a > c right -> 1/2.  wrong: 0/2.
    assert quality[right.username].gold.share == 1.0
    assert (quality[half.username].gold.agreed, quality[half.username].gold.compared) == (1, 2)
    assert quality[wrong.username].gold.share == 0.0 and quality[wrong.username].gold_rankings == 1


def test_gold_rankings_never_train_the_reward_model(project, gold, labeler):
    do_assign_next_task(project, labeler)
    do_submit_ranking(gold.pk, labeler, gold.gold_order)
    assert Ranking.objects.count() == 1
    assert not training_rankings(project).exists()


def test_a_ranked_gold_task_stays_gold_and_an_unranked_one_can_be_unmarked(project, gold, labeler):
    unranked = ComparisonTaskFactory(prompt__project=project)
    do_set_gold_order(unranked, [[cid] for cid in ids(unranked)])
    do_set_gold_order(unranked, None)
    unranked.refresh_from_db()
    assert (unranked.state, unranked.gold_order) == ("open", None)
    do_set_gold_order(unranked, [[cid] for cid in ids(unranked)])
    unranked.policy_version.status = "retired"  # its policy was retired while it was gold
    unranked.policy_version.save()
    do_set_gold_order(unranked, None)
    unranked.refresh_from_db()
    assert unranked.state == "retired"
    do_assign_next_task(project, labeler)
    do_submit_ranking(gold.pk, labeler, gold.gold_order)
    with pytest.raises(ValidationError, match="stays gold"):
        do_set_gold_order(gold, None)


def test_an_admin_marks_a_task_gold_on_its_admin_page(client, admin_user, project):
    task = ComparisonTaskFactory(prompt__project=project)
    a, b, c = ids(task)
    client.force_login(admin_user)
    url = reverse("admin:labeling_comparisontask_change", args=[task.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    items = list(task.items.order_by("position"))
    data.update({"items-TOTAL_FORMS": len(items), "items-INITIAL_FORMS": len(items), "items-MIN_NUM_FORMS": 0})
    for n, item in enumerate(items):
        data.update({f"items-{n}-id": item.pk, f"items-{n}-task": task.pk})
        data.update({f"items-{n}-completion": item.completion_id, f"items-{n}-position": item.position})
    refused = client.post(url, {**data, "expected_order": json.dumps([[a], [b]])})
    assert refused.status_code == 200
    assert "Not every completion is ranked" in refused.content.decode()
    task.refresh_from_db()
    assert task.state == "open"
    response = client.post(url, {**data, "expected_order": json.dumps([[b], [a, c]])})
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.state, task.gold_order) == ("gold", [[b], [a, c]])
