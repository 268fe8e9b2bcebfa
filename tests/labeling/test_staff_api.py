"""Staff reads through HTTP: projects, comparison tasks and rankings; labelers are refused."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import ComparisonTask, Ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory
from tests.labeling.test_api import client_for

pytestmark = pytest.mark.django_db

STAFF_URLS = ["/api/projects/", "/api/tasks/", "/api/rankings/", "/api/policies/", "/api/reward-models/", "/api/runs/"]


@pytest.fixture
def staff(admin_user):
    return client_for(admin_user)


def rank(task: ComparisonTask, labeler, **fields) -> Ranking:
    order = [[c.pk] for c in task.display_completions()]
    return Ranking.objects.create(task=task, labeler=labeler, order=order, **fields)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("url", STAFF_URLS)
def test_labelers_are_refused_staff_collections_with_403(url, labeler):
    ProjectFactory()
    response = client_for(labeler).get(url)
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


@pytest.mark.parametrize("url", STAFF_URLS)
@pytest.mark.parametrize("authorization", [None, "Token 0123456789abcdef0123456789abcdef01234567"])
def test_staff_collections_refuse_a_missing_or_wrong_token_with_401(url, authorization, admin_user):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("url", STAFF_URLS)
def test_staff_read_every_collection(url, staff):
    ComparisonTaskFactory(k=2)
    assert staff.get(url).status_code == 200


def test_staff_list_and_retrieve_projects(staff):
    first, second = ProjectFactory(name="First"), ProjectFactory(name="Second", k=3)
    assert ids(staff.get("/api/projects/")) == [second.pk, first.pk]
    body = staff.get(f"/api/projects/{second.pk}/").json()
    assert (body["name"], body["k"], body["overlap"]) == ("Second", 3, 1)


def test_tasks_filter_by_project_and_state(staff):
    project = ProjectFactory(k=2)
    open_task = ComparisonTaskFactory(prompt__project=project)
    done = ComparisonTaskFactory(prompt__project=project, state=ComparisonTask.State.COMPLETE)
    elsewhere = ComparisonTaskFactory(k=2)
    assert ids(staff.get(f"/api/tasks/?project={project.pk}")) == [done.pk, open_task.pk]
    assert ids(staff.get(f"/api/tasks/?project={project.pk}&state=open")) == [open_task.pk]
    assert ids(staff.get("/api/tasks/?state=open")) == [elsewhere.pk, open_task.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("project=x", "project"), ("state=closed", "state"), ("created_after=yesterday", "created_after")],
)
def test_a_malformed_filter_is_a_400_naming_it(staff, query, field):
    url = "/api/rankings/" if field == "created_after" else "/api/tasks/"
    response = staff.get(f"{url}?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_rankings_filter_by_project_labeler_and_time(staff, labeler, other_labeler):
    project = ProjectFactory(k=2)
    tasks = ComparisonTaskFactory.create_batch(2, prompt__project=project)
    old = rank(tasks[0], labeler)
    Ranking.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    mine, theirs = rank(tasks[1], labeler), rank(tasks[1], other_labeler)
    elsewhere = rank(ComparisonTaskFactory(k=2), labeler)
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(staff.get("/api/rankings/")) == [elsewhere.pk, theirs.pk, mine.pk, old.pk]
    assert ids(staff.get(f"/api/rankings/?project={project.pk}")) == [theirs.pk, mine.pk, old.pk]
    by_labeler = staff.get(f"/api/rankings/?project={project.pk}&labeler={labeler.pk}")
    assert ids(by_labeler) == [mine.pk, old.pk]
    after = staff.get("/api/rankings/", {"project": project.pk, "labeler": labeler.pk, "created_after": yesterday})
    assert ids(after) == [mine.pk]
    assert ids(staff.get("/api/rankings/", {"created_before": yesterday})) == [old.pk]
    assert staff.get(f"/api/rankings/?project={project.pk}").json()["results"][0]["order"] == theirs.order


def test_pages_follow_a_keyset_cursor_without_offset(staff):
    project = ProjectFactory(k=2)
    tasks = ComparisonTaskFactory.create_batch(5, prompt__project=project)
    seen, url = [], f"/api/tasks/?project={project.pk}&page_size=2"
    with CaptureQueriesContext(connection) as queries:
        while url:
            page = staff.get(url).json()
            seen += [row["id"] for row in page["results"]]
            url = page["next"]
    assert seen == [task.pk for task in reversed(tasks)]
    listing = [q["sql"] for q in queries.captured_queries if "labeling_comparisontask" in q["sql"]]
    assert len(listing) == 3
    assert not any("OFFSET" in sql for sql in listing)
    assert all('ORDER BY "labeling_comparisontask"."id" DESC' in sql for sql in listing)
    assert '"labeling_comparisontask"."id" < ' in listing[-1]
