import pytest
from django.contrib import admin
from django.urls import reverse

from labeling.models import Ranking
from tests.factories import PASSWORD, ComparisonTaskFactory, ProjectFactory
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_the_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_it_logs_a_labeler_in_and_shows_their_home(client, labeler):
    response = client.post(reverse("login"), {"username": "labeler", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:home")
    assert client.get(reverse("labeling:home")).status_code == 200


def test_a_wrong_password_is_told_so(client, labeler):
    response = client.post(reverse("login"), {"username": "labeler", "password": "nope"})
    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content


def test_home_needs_a_login(client):
    response = client.get(reverse("labeling:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_home_lists_only_the_labelers_projects_with_their_counts(client, labeler, other_labeler):
    mine = ProjectFactory(name="Mine")
    mine.labelers.add(labeler)
    ProjectFactory(name="Not mine").labelers.add(other_labeler)
    ComparisonTaskFactory.create_batch(3, prompt__project=mine, k=2)
    client.force_login(labeler)
    response = client.get(reverse("labeling:home"))
    assert response.status_code == 200
    projects = response.context["projects"]
    assert [(p.name, p.tasks_left, p.done_today) for p in projects] == [("Mine", 3, 0)]
    assert b"Not mine" not in response.content


def test_home_says_comparisons_are_being_written_while_a_sampling_run_is_live(client, labeler):
    project = ProjectFactory(name="Mine")
    project.labelers.add(labeler)
    run = TrainingRun.objects.create(project=project, kind=TrainingRun.Kind.GENERATE, status="running")
    client.force_login(labeler)
    body = client.get(reverse("labeling:home")).content.decode()
    assert "No comparisons ready yet: the model is writing the first ones now." in body
    assert 'hx-trigger="every 5s"' in body  # the list counts them as they come
    ComparisonTaskFactory.create_batch(2, prompt__project=project, k=2)
    body = client.get(reverse("labeling:home")).content.decode()
    assert "2 comparisons ready; the model is writing more." in body
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    body = client.get(reverse("labeling:home")).content.decode()
    assert "the model is writing" not in body and "every 5s" not in body


def test_home_runs_a_fixed_number_of_queries(client, labeler, django_assert_max_num_queries):
    for n in range(5):
        ProjectFactory(name=f"P{n}").labelers.add(labeler)
    client.force_login(labeler)
    with django_assert_max_num_queries(4):
        client.get(reverse("labeling:home"))


def test_a_labeler_cannot_reach_the_admin(client, labeler):
    client.force_login(labeler)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_admin_list_and_add_page_renders(client, admin_user, model):
    ComparisonTaskFactory(k=3)
    client.force_login(admin_user)
    opts = model._meta
    changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert changelist.status_code == 200
    assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 200


def test_an_admin_asks_for_demonstrations_on_selected_prompts(client, admin_user):
    from tests.factories import PromptFactory

    prompts = PromptFactory.create_batch(2)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:labeling_prompt_changelist"),
        {"action": "ask_for_demonstrations", "_selected_action": [prompts[0].pk]},
    )
    assert response.status_code == 302
    assert [p.needs_demonstration for p in type(prompts[0]).objects.order_by("id")] == [True, False]


def test_the_rankings_list_shows_orders_in_the_letters_labelers_saw(
    client, admin_user, labeler, django_assert_max_num_queries
):
    for _ in range(3):
        task = ComparisonTaskFactory(k=3)
        a, b, c = (item.completion_id for item in task.items.order_by("position"))
        Ranking.objects.create(task=task, labeler=labeler, order=[[c], [b, a]])
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        body = client.get(reverse("admin:labeling_ranking_changelist")).content.decode()
    assert body.count('<td class="field-order_letters">C &gt; B = A</td>') == 3
    change = client.get(reverse("admin:labeling_ranking_change", args=[Ranking.objects.first().pk])).content.decode()
    assert "C &gt; B = A" in change
