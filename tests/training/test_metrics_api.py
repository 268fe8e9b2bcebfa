"""GET /api/metrics/?project=ID: the dashboard's figures for staff, nobody else."""

import pytest
from rest_framework.test import APIClient

from tests.factories import ProjectFactory
from tests.labeling.test_api import client_for
from training.reports.metrics import project_metrics

pytestmark = pytest.mark.django_db


def test_staff_get_the_projects_figures(admin_user):
    project = ProjectFactory()
    response = client_for(admin_user).get(f"/api/metrics/?project={project.pk}")
    assert response.status_code == 200
    assert set(response.json()) == set(project_metrics(project))


def test_labelers_are_refused_and_strangers_must_authenticate(labeler):
    project = ProjectFactory()
    assert client_for(labeler).get(f"/api/metrics/?project={project.pk}").status_code == 403
    assert APIClient().get(f"/api/metrics/?project={project.pk}").status_code == 401


@pytest.mark.parametrize("query", ["", "?project=abc", "?project=0"])
def test_a_missing_or_bad_project_is_400(admin_user, query):
    response = client_for(admin_user).get(f"/api/metrics/{query}")
    assert response.status_code == 400
    assert "project" in response.json()


def test_an_unknown_project_is_404(admin_user):
    assert client_for(admin_user).get("/api/metrics/?project=999999").status_code == 404
