"""A schema-driven fuzz of the API (schemathesis, in-process through Django's WSGI application):
as a labeler and as staff, no answer is a 5xx, and every answer has the declared content type and
matches the schema of its status. Failures it found are kept below as plain regression tests.

25 examples an operation from a fixed seed (derandomize): the same cases in every run, so CI is not
flaky; it passed 120 random examples an operation when it was written."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labeling.services import do_assign_next_task, do_submit_ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory
from training.models import PolicyVersion, TrainingRun
from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# Not positive_data_acceptance: a schema-valid launch or filter naming a project that does not exist
# is rightly a 400; not negative_data_rejection: the list filters let `?state=` and `?page_size=x`
# through as if absent (DRF's pagination does) rather than refuse them.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def in_test_transaction():
    """Django's WSGI handler closes the connection around each request; in a test's transaction
    that would close it mid-test, so (as Django's test client does) that is turned off meanwhile."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def tokens(db, in_test_transaction):
    """A project with tasks, a ranking and a run, its labeler's token and a staff token."""
    project = ProjectFactory(k=2)
    policy = PolicyVersion.objects.create(project=project, version=0, checkpoint="base", status="active")
    ComparisonTaskFactory.create_batch(3, prompt__project=project, policy_version=policy)
    labeler, staff = UserFactory(username="fuzz-labeler"), UserFactory(username="fuzz-staff", is_staff=True)
    project.labelers.add(labeler)
    assignment = do_assign_next_task(project, labeler)
    do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in assignment.task.display_completions()])
    TrainingRun.objects.create(project=project, kind="rm", status="running", policy=policy)
    return {"labeler": Token.objects.create(user=labeler).key, "staff": Token.objects.create(user=staff).key}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["labeler", "staff"])
@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_under_fuzzing(case, tokens, role):
    case.call_and_validate(headers={"Authorization": f"Token {tokens[role]}"}, checks=CHECKS)


# Regression tests for what the fuzz found.


def test_a_cursor_that_is_not_ours_is_a_400_naming_it(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/api/runs/", {"cursor": "Run PPO round"})
    assert response.status_code == 400 and "Invalid cursor" in response.json()["cursor"][0]


def test_an_api_url_that_no_route_matches_is_a_json_404(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/api/runs/0.5/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_the_schema_lists_the_error_answers_and_a_ranking_needs_a_tie_group(client):
    spec = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    run = spec["paths"]["/api/runs/{id}/"]["get"]["responses"]
    assert {"401", "403", "404", "503"} <= set(run)
    ranking = spec["paths"]["/api/tasks/{task_id}/ranking/"]["post"]["responses"]
    assert {"400", "401", "404", "413", "503"} <= set(ranking) and "403" not in ranking
    order = spec["components"]["schemas"]["RankingInRequest"]["properties"]["order"]
    assert order["minItems"] == 1 and order["items"]["minItems"] == 1
