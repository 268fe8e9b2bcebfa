import re

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
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


def refusal(response) -> str:
    """The text of the page's one error banner."""
    banners = re.findall(r'<div class="error" role="alert" data-form-error>(.*?)</div>', response.content.decode())
    assert len(banners) == 1, banners
    return banners[0]


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
        (lambda t: {**form_for(t, [1, 2])}, "Rank every answer before submitting: answer C has no rank yet."),
        (lambda t: form_for(t, [1]), "Rank every answer before submitting: answers B and C have no rank yet."),
        (lambda t: {}, "Rank every answer before submitting: none has a rank yet."),
        (
            lambda t: {**form_for(t, [1, 2, 3]), f"rank-{foreign_id()}": "4"},
            "The form named an answer that is not part of this task",
        ),
        (
            lambda t: {**form_for(t, [1, 2, 3]), **likert_of_a(t, "0")},
            "The overall quality of answer A must be from 1 to 7.",
        ),
        (
            lambda t: {**form_for(t, [1, 2, 3]), **likert_of_a(t, "8")},
            "The overall quality of answer A must be from 1 to 7.",
        ),
        (lambda t: form_for(t, [1, 2, "x"]), "A rank must be a whole number"),
        (lambda t: {**form_for(t, [1, 2, 3]), "rank-abc": "1"}, "A completion id must be a whole number"),
        (lambda t: form_for(t, [1, 2, 3], rationale="x" * 1_000_000), "the limit is 10,000"),
    ],
)
def test_bad_input_gets_a_422_with_a_message_and_changes_nothing(as_labeler, task, make_data, message):
    response = as_labeler.post(submit_url(task), make_data(task))
    assert response.status_code == 422
    assert message in refusal(response)
    assert "(id " not in refusal(response)  # answers by the letter labelers see, never by id
    assert Ranking.objects.count() == 0
    assert Assignment.objects.get(task=task).state == Assignment.State.LEASED


def test_a_completion_named_twice_is_refused(as_labeler, task):
    a = task.display_completions()[0]
    body = "&".join(f"{key}={value}" for key, value in form_for(task, [1, 2, 3]).items()) + f"&rank-{a.pk}=3"
    response = as_labeler.post(submit_url(task), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 422
    assert refusal(response) == "Answer A is placed twice: give each answer one rank."
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


def test_prompts_and_answers_render_as_markdown_with_raw_html_escaped(as_labeler, project, labeler):
    task = ComparisonTaskFactory(prompt__project=project, prompt__text="Why is `x` **bold**?")
    AssignmentFactory(task=task, labeler=labeler)
    a, b, c = task.display_completions()
    a.text = "It is **bold**.\n\n```python\nprint('<b>hi</b>')\n```\n<script>alert(1)</script>"
    b.text = "[click](javascript:alert(1)) and ![pixel](https://example.com/p.png)"
    a.save(update_fields=["text"])
    b.save(update_fields=["text"])
    body = as_labeler.get(reverse("labeling:task", args=[task.pk])).content.decode()
    assert "Why is <code>x</code> <strong>bold</strong>?" in body
    assert "<p>It is <strong>bold</strong>.</p>" in body
    assert "<pre><code class=\"language-python\">print('&lt;b&gt;hi&lt;/b&gt;')\n</code></pre>" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert 'href="javascript' not in body  # the link is refused
    assert "[click](javascript:alert(1))" in body  # shown as the text it is
    assert "<img" not in body and 'href="https://example.com/p.png"' in body  # images are never fetched


def test_the_demonstrations_page_says_when_the_project_asks_for_none(as_labeler, project):
    body = as_labeler.get(reverse("labeling:demonstrations", args=[project.pk])).content.decode()
    assert "No ideal answers asked for" in body and "does not ask for ideal answers at the moment" in body
    assert "You have written an ideal answer" not in body
    home = as_labeler.get(reverse("labeling:home")).content.decode()
    assert reverse("labeling:demonstrations", args=[project.pk]) not in home


def test_the_demonstrations_page_and_home_say_when_every_answer_is_written(as_labeler, project, labeler):
    prompt = PromptFactory(project=project, needs_demonstration=True)
    Demonstration.objects.create(prompt=prompt, labeler=labeler, text="Mine.")
    body = as_labeler.get(reverse("labeling:demonstrations", args=[project.pk])).content.decode()
    assert "All ideal answers written" in body and "You have written an ideal answer for every prompt" in body
    home = as_labeler.get(reverse("labeling:home")).content.decode()
    assert reverse("labeling:demonstrations", args=[project.pk]) in home
    assert "you have written the one this project asks for" in home


def test_favicon_ico_redirects_to_the_static_icon_that_every_page_links(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == static("img/favicon.ico")
    assert finders.find("img/favicon.ico") and finders.find("img/favicon.svg")
    body = client.get(reverse("login")).content.decode()
    assert f'<link rel="icon" href="{static("img/favicon.svg")}" type="image/svg+xml">' in body


def test_out_of_tasks_the_page_polls_for_the_next_and_counts_what_is_done(as_labeler, project, task):
    as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]))
    page = as_labeler.get(reverse("labeling:next", args=[project.pk]))
    body = page.content.decode()
    assert "All done for now" in body
    assert f'hx-get="{reverse("labeling:next", args=[project.pk])}" hx-trigger="every 20s"' in body
    assert "<strong>1</strong> ranked today · <strong>0</strong> ready for you" in body
    assert "this page looks every 20 seconds and shows the next one as soon as it is ready" in body


def test_a_poll_that_finds_a_task_swaps_it_in_and_moves_the_address_to_it(as_labeler, project):
    first = as_labeler.get(reverse("labeling:next", args=[project.pk]), HTTP_HX_REQUEST="true")
    assert "All done for now" in first.content.decode()
    task = ComparisonTaskFactory(prompt__project=project)  # sampled meanwhile
    response = as_labeler.get(reverse("labeling:next", args=[project.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("labeling:task", args=[task.pk])
    assert f"Task {task.pk}" in response.content.decode() and "<html" not in response.content.decode()


def test_a_ranked_task_revisited_shows_what_was_sent_read_only_with_next_task(as_labeler, project, task):
    a, b, c = (item.completion_id for item in task.items.order_by("position"))
    as_labeler.post(submit_url(task), form_for(task, [2, 1, 2]))  # B best, then A and C tied
    page = as_labeler.get(reverse("labeling:task", args=[task.pk]))
    body = page.content.decode()
    assert "You ranked this task" in body and 'best first: <strong class="order">B &gt; A = C</strong>' in body
    assert "A ranking cannot be changed once it is sent" in body
    assert f'href="{reverse("labeling:next", args=[project.pk])}">Next task</a>' in body
    main = body.split("<main")[1].split("</main>")[0]
    assert "ranking-form" not in main and "data-rank-form" not in main  # nothing to post
    assert [shown.rank for shown in page.context["completions"]] == ["2", "1", "2"]
    assert Ranking.objects.get().order == [[b], [a, c]]  # nothing changed by looking


def test_a_submit_says_the_ranking_landed(as_labeler, task):
    response = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]), HTTP_HX_REQUEST="true")
    assert f"Your ranking of task {task.pk} is saved." in response.content.decode()
    follow = as_labeler.post(submit_url(task), form_for(task, [1, 2, 3]), follow=True)  # without htmx: a message
    assert response.status_code == 200 and follow.status_code == 200


def test_skipping_as_other_needs_the_labelers_words(as_labeler, task):
    refused = as_labeler.post(reverse("labeling:skip", args=[task.pk]), {"reason": "other", "other": " "})
    assert refused.status_code == 422 and "Say in a few words why you skip it" in refusal(refused)
    assert Assignment.objects.get(task=task).state == Assignment.State.LEASED
    as_labeler.post(reverse("labeling:skip", args=[task.pk]), {"reason": "other", "other": "The answers are cut off"})
    assert Assignment.objects.get(task=task).skip_reason == "Other: The answers are cut off"


def test_another_labelers_task_is_the_sites_own_404_page_with_a_way_home(client, other_labeler, task, settings):
    settings.DEBUG = True  # the demo's setting: Django would show its technical page
    client.force_login(other_labeler)
    response = client.get(reverse("labeling:task", args=[task.pk]))
    body = response.content.decode()
    assert response.status_code == 404
    assert "No such task among yours." in body and ">Your projects</a>" in body and "Technical" not in body


def test_staff_see_the_training_navigation_and_the_training_index(client, admin_user, project, labeler):
    client.force_login(admin_user)
    home = client.get(reverse("labeling:home")).content.decode()
    for name, url in [("Training", "/training/"), ("Runs", "/admin/training/trainingrun/"), ("Admin", "/admin/")]:
        assert f'<a href="{url}">{name}</a>' in home
    assert reverse("training:project", args=[project.pk]) in home  # each project's home, from the first page
    index = client.get("/training/")
    assert index.status_code == 200 and "Helpful" in index.content.decode()
    client.force_login(labeler)
    assert 'aria-label="Staff"' not in client.get(reverse("labeling:home")).content.decode()
