import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Assignment, ComparisonTask, Demonstration, Ranking
from tests.factories import AssignmentFactory, ComparisonTaskFactory, ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(labeler):
    project = ProjectFactory(name="Helpful", k=3, guidelines="Prefer **honest** answers. <b>raw</b>")
    project.labelers.add(labeler)
    return project


@pytest.fixture
def task(project, labeler):
    task = ComparisonTaskFactory(prompt__project=project, prompt__text="Say <script>alert(1)</script>")
    AssignmentFactory(task=task, labeler=labeler)
    return task


@pytest.fixture
def as_labeler(client, labeler):
    client.force_login(labeler)
    return client


def form_for(task: ComparisonTask, ranks: list[int], **extra) -> dict:
    """The POST a browser sends: rank numbers in display order (A, B, C, ...)."""
    data = {f"rank-{c.pk}": str(rank) for c, rank in zip(task.display_completions(), ranks, strict=False)}
    return {**data, **extra}


def submit_url(task: ComparisonTask) -> str:
    return reverse("labeling:submit", args=[task.pk])


def test_start_labeling_leases_a_task_and_redirects_to_it(as_labeler, project):
    task = ComparisonTaskFactory(prompt__project=project)
    response = as_labeler.get(reverse("labeling:next", args=[project.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:task", args=[task.pk])
    assert Assignment.objects.get().task == task


def test_the_ranking_page_shows_the_task_as_escaped_text(as_labeler, task):
    response = as_labeler.get(reverse("labeling:task", args=[task.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Say &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body
    assert "<strong>honest</strong>" in body and "&lt;b&gt;raw&lt;/b&gt;" in body
    letters = [c.letter for c in response.context["completions"]]
    assert letters == ["A", "B", "C"]


def test_nothing_left_says_so(as_labeler, project):
    response = as_labeler.get(reverse("labeling:next", args=[project.pk]))
    assert response.status_code == 200
    assert b"All done for now" in response.content


def test_a_project_the_labeler_is_not_on_is_a_404(as_labeler):
    other = ProjectFactory()
    ComparisonTaskFactory(prompt__project=other)
    assert as_labeler.get(reverse("labeling:next", args=[other.pk])).status_code == 404
    assert Assignment.objects.count() == 0


def test_it_stores_a_posted_ranking_with_a_tie_and_redirects_to_the_next_task(as_labeler, task):
    a, b, c = task.display_completions()
    response = as_labeler.post(submit_url(task), form_for(task, [2, 1, 2], flags=["nonsense"], time_spent_ms="4200"))
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:next", args=[task.project.pk])
    ranking = Ranking.objects.get()
    assert ranking.order == [[b.pk], [a.pk, c.pk]]
    assert (ranking.flags, ranking.time_spent_ms) == (["nonsense"], 4200)
    assert Assignment.objects.get().state == Assignment.State.SUBMITTED


def test_an_htmx_submit_swaps_in_the_next_task(as_labeler, task, labeler):
    following = ComparisonTaskFactory(prompt__project=task.project, prompt__text="The next prompt")
    response = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="task"') and "<html" not in body
    assert "The next prompt" in body
    assert response["HX-Push-Url"] == reverse("labeling:task", args=[following.pk])


def test_a_double_submit_stores_one_ranking(as_labeler, task):
    first = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]))
    second = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]))
    assert first.status_code == second.status_code == 302
    assert Ranking.objects.count() == 1


def likert_of_a(task: ComparisonTask, score: str) -> dict:
    return {f"likert-{task.display_completions()[0].pk}": score}


def foreign_id() -> int:
    return ComparisonTaskFactory(k=2).display_completions()[0].pk


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda t: {**form_for(t, [1, 2])}, "Not every completion is ranked"),
        (lambda t: {}, "The ranking is empty"),
        (
            lambda t: {**form_for(t, [1, 2, 3]), f"rank-{foreign_id()}": "4"},
            "is not one of this task&#x27;s completions",
        ),
        (lambda t: {**form_for(t, [1, 2, 3]), **likert_of_a(t, "0")}, "is not 1–7"),
        (lambda t: {**form_for(t, [1, 2, 3]), **likert_of_a(t, "8")}, "is not 1–7"),
        (lambda t: form_for(t, [1, 2, "x"]), "A rank must be a whole number"),
        (lambda t: {**form_for(t, [1, 2, 3]), "rank-abc": "1"}, "A completion id must be a whole number"),
        (lambda t: form_for(t, [1, 2, 3], rationale="x" * 1_000_000), "the limit is 10,000"),
    ],
)
def test_bad_input_gets_a_422_with_a_message_and_changes_nothing(as_labeler, task, make_data, message):
    response = as_labeler.post(submit_url(task), make_data(task))
    assert response.status_code == 422
    assert message in response.content.decode()
    assert Ranking.objects.count() == 0
    assert Assignment.objects.get(task=task).state == Assignment.State.LEASED


def test_a_completion_named_twice_is_refused(as_labeler, task):
    a = task.display_completions()[0]
    body = "&".join(f"{key}={value}" for key, value in form_for(task, [1, 2, 3]).items()) + f"&rank-{a.pk}=3"
    response = as_labeler.post(submit_url(task), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 422
    assert f"Completion {a.pk} is placed twice" in response.content.decode()
    assert Ranking.objects.count() == 0


def test_an_htmx_error_re_renders_the_form_with_the_ranks_kept(as_labeler, task):
    response = as_labeler.post(submit_url(task), form_for(task, [2, 1]), headers={"HX-Request": "true"})
    assert response.status_code == 422
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="task"') and 'role="alert"' in body
    assert '<option value="2" selected>' in body


def test_another_labelers_task_is_a_404_and_changes_nothing(client, other_labeler, task):
    client.force_login(other_labeler)
    assert client.get(reverse("labeling:task", args=[task.pk])).status_code == 404
    assert client.post(submit_url(task), form_for(task, [1, 2, 3])).status_code == 404
    assert client.post(reverse("labeling:skip", args=[task.pk]), {"reason": "Other"}).status_code == 404
    assert Ranking.objects.count() == 0
    assert Assignment.objects.get().state == Assignment.State.LEASED


def test_a_non_integer_task_id_is_a_404(as_labeler):
    assert as_labeler.get("/tasks/abc/").status_code == 404
    assert as_labeler.post("/tasks/1.5/ranking/").status_code == 404


def test_a_post_without_a_csrf_token_is_refused(labeler, task):
    client = Client(enforce_csrf_checks=True)
    client.force_login(labeler)
    assert client.post(submit_url(task), form_for(task, [1, 2, 3])).status_code == 403
    assert Ranking.objects.count() == 0


def test_a_late_submit_refused_tells_the_labeler_and_moves_on(as_labeler, task, other_labeler):
    Assignment.objects.update(leased_until="2000-01-01T00:00:00Z")
    AssignmentFactory(task=task, labeler=other_labeler)
    response = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]), follow=True)
    assert b"Your time on this task ran out" in response.content
    assert Ranking.objects.count() == 0


def test_skipping_needs_a_reason_then_moves_on(as_labeler, task):
    assert as_labeler.post(reverse("labeling:skip", args=[task.pk]), {"reason": ""}).status_code == 422
    response = as_labeler.post(reverse("labeling:skip", args=[task.pk]), {"reason": "Other"})
    assert response.status_code == 302
    assert Assignment.objects.get().state == Assignment.State.SKIPPED


def test_home_links_to_labeling_and_demonstrations(as_labeler, project, task):
    PromptFactory(project=project, needs_demonstration=True)
    body = as_labeler.get(reverse("labeling:home")).content.decode()
    assert reverse("labeling:next", args=[project.pk]) in body
    assert "Write ideal answers (1)" in body


def test_a_demonstration_is_stored_and_the_next_prompt_shown(as_labeler, project, labeler):
    first = PromptFactory(project=project, needs_demonstration=True, text="First?")
    PromptFactory(project=project, needs_demonstration=True, text="Second?")
    url = reverse("labeling:demonstrations", args=[project.pk])
    assert b"First?" in as_labeler.get(url).content
    response = as_labeler.post(url, {"prompt": first.pk, "text": "An ideal answer."}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"Second?" in response.content and b"your answer was saved" in response.content
    assert Demonstration.objects.get().text == "An ideal answer."


def test_an_empty_demonstration_is_refused(as_labeler, project):
    prompt = PromptFactory(project=project, needs_demonstration=True)
    url = reverse("labeling:demonstrations", args=[project.pk])
    response = as_labeler.post(url, {"prompt": prompt.pk, "text": "   "})
    assert response.status_code == 422
    assert b"Write an answer before submitting" in response.content
    assert Demonstration.objects.count() == 0


def test_a_demonstration_for_a_prompt_not_asking_for_one_is_a_404(as_labeler, project):
    prompt = PromptFactory(project=project, needs_demonstration=False)
    url = reverse("labeling:demonstrations", args=[project.pk])
    assert as_labeler.post(url, {"prompt": prompt.pk, "text": "x"}).status_code == 404
