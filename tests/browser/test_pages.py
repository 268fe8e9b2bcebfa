import pytest

from tests.browser.conftest import screenshot
from tests.factories import PASSWORD, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_labeler_logs_in_and_sees_their_projects(page, live_server, labeler):
    ProjectFactory(name="Helpful answers").labelers.add(labeler)
    page.goto(f"{live_server.url}/")
    page.get_by_role("heading", name="Log in").wait_for()
    screenshot(page, "login-1280")
    log_in(page, live_server, "labeler")
    page.get_by_role("heading", name="Helpful answers").wait_for()
    screenshot(page, "home-1280")
    page.set_viewport_size({"width": 375, "height": 740})
    screenshot(page, "home-375")


def test_a_wrong_password_shows_an_error(page, live_server, labeler):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("labeler")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").wait_for()
    assert "correct username and password" in page.get_by_role("alert").inner_text()


def test_an_admin_reaches_the_admin(page, live_server, admin_user):
    ProjectFactory(name="Helpful answers")
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("heading", name="Site administration").wait_for()
    screenshot(page, "admin-index-1280")
    page.goto(f"{live_server.url}/admin/labeling/project/")
    page.get_by_role("link", name="Helpful answers").wait_for()
    screenshot(page, "admin-projects-1280")
