"""A staff user imports prompts and downloads the preferences from the project's admin page: real Chromium."""

import json

import pytest
from playwright.sync_api import expect

from labeling.models import Ranking
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_staff_user_imports_prompts_and_downloads_pairs(page, live_server, admin_user, factory_ranked_project):
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/labeling/project/{factory_ranked_project.pk}/change/")
    screenshot(page, "admin-project-links-1280")
    page.get_by_role("link", name="Import prompts").click()
    content = b'{"prompt": "Imported <b>one</b>", "topic": "a"}\n{"prompt": ""}\nnot json\n{"prompt": "Two"}\n'
    page.get_by_label("File").set_input_files({"name": "new.jsonl", "mimeType": "application/jsonl", "buffer": content})
    page.get_by_role("button", name="Import").click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("Imported 2 prompts from new.jsonl")
    expect(report).to_contain_text("line 2: the prompt cannot be empty")
    expect(report).to_contain_text("line 3: not valid JSON")
    screenshot(page, "admin-import-report-1280")
    assert factory_ranked_project.prompts.filter(source="new.jsonl").count() == 2

    page.goto(f"{live_server.url}/admin/labeling/project/{factory_ranked_project.pk}/change/")
    page.get_by_role("link", name="Export preferences").click()
    screenshot(page, "admin-export-1280")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename.endswith("-pairs.jsonl")
    rows = [json.loads(line) for line in open(download.value.path(), encoding="utf-8")]
    assert len(rows) == 3 * Ranking.objects.filter(task__project=factory_ranked_project).count()  # K=3, no ties
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}
