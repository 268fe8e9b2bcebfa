import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_page_renders_from_our_own_static_files(page, live_server):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/api/docs/")
    page.get_by_text("/api/tasks/next/", exact=True).first.wait_for()
    page.get_by_role("button", name="Authorize").wait_for()
    screenshot(page, "api-docs-1280")
    assert requested and all(url.startswith(live_server.url) or url.startswith("data:") for url in requested)
