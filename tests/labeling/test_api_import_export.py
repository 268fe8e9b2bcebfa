"""Prompt import and preference export through the API: the same services as the command and the admin."""

import json

import pytest

from labeling.models import Prompt, Ranking
from tests.factories import ComparisonTaskFactory, ProjectFactory
from tests.labeling.test_api import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory(k=3)


def test_it_imports_prompts_and_reports_bad_items_by_position(admin_user, project):
    project.prompts.create(text="Already here")
    items = ["What is RLHF?", {"prompt": "Name a prime.", "topic": "maths"}, {"text": "no prompt"}, "Already here"]
    response = client_for(admin_user).post(f"/api/projects/{project.pk}/prompts/", {"prompts": items})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["imported"], body["duplicates"], body["invalid_count"], body["rolled_back"]) == (2, 1, 1, False)
    assert [bad["item"] for bad in body["invalid"]] == [3]
    stored = Prompt.objects.get(project=project, text="Name a prime.")
    assert (stored.metadata, stored.source) == ({"topic": "maths"}, "api")


def test_an_atomic_import_with_a_bad_item_stores_nothing(admin_user, project):
    response = client_for(admin_user).post(
        f"/api/projects/{project.pk}/prompts/", {"prompts": ["Fine", {"prompt": ""}], "atomic": True}
    )
    assert response.status_code == 422
    assert response.json()["rolled_back"] is True
    assert not project.prompts.exists()


@pytest.mark.parametrize("body", [{}, {"prompts": []}, {"prompts": "one"}])
def test_a_malformed_import_is_400_and_stores_nothing(admin_user, project, body):
    response = client_for(admin_user).post(f"/api/projects/{project.pk}/prompts/", body)
    assert response.status_code == 400
    assert "prompts" in response.json()
    assert not project.prompts.exists()


def test_labelers_may_not_import_or_export(labeler, project):
    client = client_for(labeler)
    assert client.post(f"/api/projects/{project.pk}/prompts/", {"prompts": ["x"]}).status_code == 403
    assert client.get(f"/api/projects/{project.pk}/export/").status_code == 403
    assert not project.prompts.exists()


def test_staff_download_pairs_as_streamed_jsonl(admin_user, labeler, project):
    task = ComparisonTaskFactory(prompt__project=project)
    a, b, c = task.display_completions()
    Ranking.objects.create(task=task, labeler=labeler, order=[[b.pk], [a.pk, c.pk]])
    response = client_for(admin_user).get(f"/api/projects/{project.pk}/export/?kind=pairs&ties=half")
    assert response.status_code == 200
    assert response.streaming
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    prompt = task.prompt.text
    assert rows == [
        {"prompt": prompt, "chosen": b.text, "rejected": a.text},
        {"prompt": prompt, "chosen": b.text, "rejected": c.text},
        {"prompt": prompt, "chosen": a.text, "rejected": c.text},
        {"prompt": prompt, "chosen": c.text, "rejected": a.text},
    ]


def test_an_unknown_export_kind_is_400(admin_user, project):
    response = client_for(admin_user).get(f"/api/projects/{project.pk}/export/?kind=csv")
    assert response.status_code == 400
    assert "kind" in response.json()
