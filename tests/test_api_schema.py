"""The OpenAPI schema validates, and its docs page loads nothing from outside the site."""

import re

import pytest
from django.core.management import call_command


def test_the_openapi_schema_validates_without_warnings(tmp_path):
    schema = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema))
    text = schema.read_text()
    for path in ["/api/tasks/next/:", "/api/tasks/{task_id}/ranking/:", "/api/runs/{id}/cancel/:", "/api/rankings/:"]:
        assert f"  {path}" in text
    assert "tokenAuth" in text


@pytest.mark.django_db
def test_the_docs_page_serves_swagger_ui_from_our_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", body)
    assert client.get("/api/schema/").status_code == 200
