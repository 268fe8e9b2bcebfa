"""The labeler's API through HTTP: next task and ranking, with tokens, and every refusal."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Assignment, ComparisonTask, Ranking
from tests.factories import AssignmentFactory, ComparisonTaskFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(labeler) -> APIClient:
    return client_for(labeler)


@pytest.fixture
def project(labeler):
    project = ProjectFactory(k=3)
    project.labelers.add(labeler)
    return project


@pytest.fixture
def task(project, labeler) -> ComparisonTask:
    """A task leased to the labeler."""
    task = ComparisonTaskFactory(prompt__project=project, prompt__text="Which is best?")
    AssignmentFactory(task=task, labeler=labeler)
    return task


def next_url(project) -> str:
    return f"/api/tasks/next/?project={project.pk}"


def ranking_url(task) -> str:
    return f"/api/tasks/{task.pk}/ranking/"


def best_first(task) -> list[list[int]]:
    return [[c.pk] for c in task.display_completions()]


def assert_nothing_stored(task) -> None:
    assert Ranking.objects.count() == 0
    assignment = Assignment.objects.get(task=task)
    assert assignment.state == Assignment.State.LEASED
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.OPEN


def test_it_leases_the_next_task_with_its_completions_in_display_order(api, project, labeler):
    task = ComparisonTaskFactory(prompt__project=project, prompt__text="Say <b>hi</b>")
    response = api.get(next_url(project))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == task.pk and body["prompt"] == "Say <b>hi</b>"
    assert body["completions"] == [{"id": c.pk, "text": c.text} for c in task.display_completions()]
    assignment = Assignment.objects.get()
    assert (assignment.task, assignment.labeler, assignment.state) == (task, labeler, Assignment.State.LEASED)
    assert body["lease_expires"].startswith(assignment.leased_until.isoformat()[:19])


def test_asking_again_returns_the_task_already_held(api, project):
    ComparisonTaskFactory.create_batch(2, prompt__project=project)
    first, second = api.get(next_url(project)), api.get(next_url(project))
    assert first.json()["id"] == second.json()["id"]
    assert Assignment.objects.count() == 1


def test_it_answers_204_when_nothing_is_left(api, project):
    response = api.get(next_url(project))
    assert response.status_code == 204
    assert response.content == b""


def test_a_project_the_labeler_does_not_label_is_a_404_and_leases_nothing(api):
    other = ProjectFactory()
    ComparisonTaskFactory(prompt__project=other)
    response = api.get(next_url(other))
    assert response.status_code == 404
    assert response.json() == {"detail": "No such project among yours."}
    assert Assignment.objects.count() == 0


@pytest.mark.parametrize("query", ["", "?project=", "?project=abc", "?project=0"])
def test_a_missing_or_malformed_project_is_a_400_naming_it(api, query):
    response = api.get(f"/api/tasks/next/{query}")
    assert response.status_code == 400
    assert "project" in response.json()


def test_it_stores_a_ranking_then_answers_200_to_the_same_ranking_again(api, task, labeler):
    a, b, c = task.display_completions()
    posted = {"order": [[b.pk], [c.pk, a.pk]], "likert": {str(b.pk): 6}, "flags": ["nonsense"], "rationale": "B."}
    first = api.post(ranking_url(task), posted)
    assert first.status_code == 201
    ranking = Ranking.objects.get()
    assert first.json()["id"] == ranking.pk
    assert ranking.order == [[b.pk], [a.pk, c.pk]]  # ties stored in display order
    assert (ranking.likert, ranking.flags, ranking.rationale) == ({str(b.pk): 6}, ["nonsense"], "B.")
    second = api.post(ranking_url(task), posted)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert Ranking.objects.count() == 1
    assert Assignment.objects.get().state == Assignment.State.SUBMITTED
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.COMPLETE


def test_a_different_second_ranking_is_a_409_and_the_first_stays(api, task):
    api.post(ranking_url(task), {"order": best_first(task)})
    response = api.post(ranking_url(task), {"order": best_first(task)[::-1]})
    assert response.status_code == 409
    assert "cannot be changed" in response.json()["detail"]
    assert Ranking.objects.get().order == best_first(task)


def test_another_labelers_task_is_a_404_and_changes_nothing(task, other_labeler):
    response = client_for(other_labeler).post(ranking_url(task), {"order": best_first(task)})
    assert response.status_code == 404
    assert response.json() == {"detail": "No such task among yours."}
    assert_nothing_stored(task)


def test_a_task_that_does_not_exist_is_a_404(api):
    response = api.post("/api/tasks/999999/ranking/", {"order": [[1], [2]]})
    assert response.status_code == 404


def messages_of(errors) -> list[str]:
    """Every message in DRF's nested error structure (lists, and dicts by index)."""
    if isinstance(errors, str):
        return [errors]
    values = errors.values() if isinstance(errors, dict) else errors
    return [text for value in values for text in messages_of(value)]


def foreign_completion_id() -> int:
    return ComparisonTaskFactory(k=2).display_completions()[0].pk


@pytest.mark.parametrize(
    ("make_body", "field", "message"),
    [
        (lambda t, ids: {}, "order", "This field is required."),
        (lambda t, ids: {"order": []}, "order", "This list may not be empty."),
        (lambda t, ids: {"order": "A > B > C"}, "order", 'Expected a list of items but got type "str".'),
        (lambda t, ids: {"order": [[ids[0]], [], [ids[1], ids[2]]]}, "order", None),
        (lambda t, ids: {"order": [[ids[0]], ["x"]]}, "order", None),
        (lambda t, ids: {"order": [[ids[0]], [ids[1]]]}, "order", "Not every completion is ranked"),
        (lambda t, ids: {"order": [[ids[0]], [ids[1]], [ids[2], ids[0]]]}, "order", "is placed twice"),
        (
            lambda t, ids: {"order": [[i] for i in ids] + [[foreign_completion_id()]]},
            "order",
            "is not one of this task's completions.",
        ),
        (lambda t, ids: {"order": [[i] for i in ids], "likert": {str(ids[0]): 8}}, "likert", "is not 1–7"),
        (lambda t, ids: {"order": [[i] for i in ids], "likert": {"abc": 3}}, "likert", "is not a completion id"),
        (lambda t, ids: {"order": [[i] for i in ids], "flags": ["boring"]}, "flags", None),
        (lambda t, ids: {"order": [[i] for i in ids], "rationale": "x" * 10_001}, "rationale", "the limit is 10,000"),
        (lambda t, ids: {"order": [[i] for i in ids], "time_spent_ms": -5}, "time_spent_ms", None),
    ],
)
def test_a_malformed_ranking_is_a_400_naming_the_field_and_stores_nothing(api, task, make_body, field, message):
    ids = [c.pk for c in task.display_completions()]
    response = api.post(ranking_url(task), make_body(task, ids))
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    if message:
        assert any(message in text for text in messages_of(errors[field]))
    assert_nothing_stored(task)


def test_a_foreign_completion_id_is_named_in_the_message(api, task):
    foreign = foreign_completion_id()
    order = [[foreign], *best_first(task)]
    response = api.post(ranking_url(task), {"order": order})
    assert response.json() == {"order": [f"Completion {foreign} is not one of this task's completions."]}
    assert_nothing_stored(task)


def test_a_body_that_is_not_json_is_a_400_with_a_message(api, task):
    response = api.post(ranking_url(task), "order=[[1]]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert_nothing_stored(task)


def test_a_json_value_that_is_not_an_object_is_a_400(api, task):
    response = api.post(ranking_url(task), "[[1], [2]]", content_type="application/json")
    assert response.status_code == 400
    assert "Expected a dictionary" in response.json()["non_field_errors"][0]
    assert_nothing_stored(task)


def test_a_form_encoded_body_is_a_415_with_a_message(api, task):
    response = api.post(ranking_url(task), "order=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    assert_nothing_stored(task)


def test_a_2_mb_body_is_a_413_with_a_message(api, task):
    body = json.dumps({"order": best_first(task), "rationale": "x" * (2 * 1024 * 1024)})
    response = api.post(ranking_url(task), body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"detail": f"The request body is {len(body):,} bytes; the limit is 1,048,576 bytes."}
    assert_nothing_stored(task)


def test_ranking_a_skipped_task_is_a_409(api, task):
    Assignment.objects.update(state=Assignment.State.SKIPPED)
    response = api.post(ranking_url(task), {"order": best_first(task)})
    assert response.status_code == 409
    assert response.json() == {"detail": "You skipped this task, so it cannot be ranked now.", "code": "skipped"}
    assert Ranking.objects.count() == 0


@pytest.mark.parametrize("method", ["get_next", "post_ranking"])
@pytest.mark.parametrize("authorization", [None, "Token 0123456789abcdef0123456789abcdef01234567", "Bearer x"])
def test_it_refuses_a_request_without_a_valid_token_with_401(task, method, authorization):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    if method == "get_next":
        response = client.get(next_url(task.project))
    else:
        response = client.post(ranking_url(task), {"order": best_first(task)})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert_nothing_stored(task)


def test_a_logged_in_user_can_browse_the_api_with_a_session(client, labeler, project):
    ComparisonTaskFactory(prompt__project=project)
    client.force_login(labeler)
    response = client.get(next_url(project), headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"Which is best?" not in response.content and b"Prompt number" in response.content


def test_a_session_post_without_a_csrf_token_is_refused(labeler, task):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(labeler)
    response = client.post(ranking_url(task), {"order": best_first(task)})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert_nothing_stored(task)


def test_a_labeler_ranks_through_the_api_until_nothing_is_left(api, project):
    ComparisonTaskFactory.create_batch(3, prompt__project=project)
    ranked = []
    while (response := api.get(next_url(project))).status_code == 200:
        task = response.json()
        order = [[c["id"]] for c in task["completions"]]
        assert api.post(f"/api/tasks/{task['id']}/ranking/", {"order": order}).status_code == 201
        ranked.append(task["id"])
    assert response.status_code == 204
    assert len(ranked) == len(set(ranked)) == 3 == Ranking.objects.count()
