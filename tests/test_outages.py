"""A database error in a view is a 503 with Retry-After, JSON for the API, a page for the browser.
(tests/faults/test_database_restart.py restarts a real PostgreSQL under load.)"""

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.urls import reverse

from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("error", [OperationalError("the database system is shutting down"), InterfaceError("closed")])
def test_it_answers_503_json_with_retry_after_when_the_api_meets_a_database_error(client, labeler, error):
    project = ProjectFactory()
    project.labelers.add(labeler)
    client.force_login(labeler)
    with mock.patch("labeling.api.do_assign_next_task", side_effect=error):
        response = client.get(reverse("api:next-task"), {"project": project.pk})
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"
    assert "nothing was stored" in response.json()["detail"]


def test_it_answers_a_plain_503_page_to_a_browser(client, labeler):
    project = ProjectFactory()
    project.labelers.add(labeler)
    client.force_login(labeler)
    with mock.patch("labeling.views.do_assign_next_task", side_effect=OperationalError("connection refused")):
        response = client.get(reverse("labeling:next", args=[project.pk]))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "Unavailable for a moment" in body and "Traceback" not in body and "connection refused" not in body


def test_other_errors_are_left_to_django(client, labeler):
    project = ProjectFactory()
    project.labelers.add(labeler)
    client.force_login(labeler)
    with mock.patch("labeling.api.do_assign_next_task", side_effect=RuntimeError("a bug")):
        with pytest.raises(RuntimeError):
            client.get(reverse("api:next-task"), {"project": project.pk})
