"""The pages under the Content-Security-Policy, in a real Chromium: ranking (keys, a drag, a
refused submit, the next task swapped in by htmx), the run page's polling and charts, the
other pages with scripts, and the lockout page, each with no violation reported.

Chromium reports a blocked script, style or eval twice: as a console error naming the policy,
and as a `securitypolicyviolation` event, which a script added before the page's own records.
"""

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import Ranking
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import drag_pool_chip_to_end, ids_by_letter, log_in, task_id_in_url, wait_until_ready
from tests.browser.test_run_page import ppo_metrics
from tests.factories import PASSWORD, ComparisonTaskFactory, ProjectFactory
from training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def violations(page):
    """Every CSP violation the pages of this test report: console errors and events alike."""
    seen: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)

    def collect() -> list[str]:
        return seen + page.evaluate("window.__csp || []")

    return collect


def test_ranking_works_under_the_csp_with_no_violation(page, live_server, labeler, violations):
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    tasks = [ComparisonTaskFactory(prompt__project=project, k=4) for _ in range(2)]
    log_in(page, live_server, "labeler")
    response = page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    config = page.evaluate("[htmx.config.includeIndicatorStyles, htmx.config.allowEval]")
    assert config == [False, False]  # from base.html's htmx-config: no <style> added, no eval
    first = next(t for t in tasks if t.pk == task_id_in_url(page))
    ids = ids_by_letter(first)
    wait_until_ready(page)

    # A submit before every answer is placed is refused in the page; then keys, a tie and a drag.
    page.keyboard.press("Enter")
    expect(page.locator("[data-rank-hint]")).to_contain_text("Place every answer before submitting")
    page.keyboard.press("C")
    page.keyboard.press("A")
    page.keyboard.press("=")
    page.keyboard.press("D")
    drag_pool_chip_to_end(page, ids["B"], [ids[x] for x in "CADB"])
    expect(page.locator("[data-rank-hint]")).to_have_text("Every answer is placed: press Enter or Submit.")
    screenshot(page, "csp-ranking-1280")

    page.evaluate("window.__noReload = 1")
    page.keyboard.press("Enter")
    second = next(t for t in tasks if t.pk != first.pk)
    expect(page.locator(".task-head .muted")).to_have_text(f"Task {second.pk}")
    assert page.evaluate("window.__noReload") == 1, "htmx did not swap the next task in"
    wait_until_ready(page)
    screenshot(page, "csp-ranking-next-1280")

    ranking = Ranking.objects.get(task=first, labeler=labeler)
    assert ranking.order == [[ids["C"]], [ids["A"], ids["D"]], [ids["B"]]]
    assert violations() == []


def test_the_run_page_polls_and_draws_under_the_csp_with_no_violation(page, live_server, admin_user, violations):
    run = TrainingRun.objects.create(
        project=ProjectFactory(name="Helpful answers"),
        kind="ppo",
        status="running",
        progress=0.4,
        metrics=ppo_metrics(8, 20),
        launched_by=admin_user,
    )
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    expect(page.locator("figure.chart canvas")).to_have_count(5)
    expect(page.get_by_label("Progress: 40%")).to_be_visible()
    TrainingRun.objects.filter(pk=run.pk).update(
        progress=1.0, status="succeeded", metrics=ppo_metrics(20, 20), finished_at=timezone.now()
    )
    expect(page.locator(".status")).to_have_text("Succeeded", timeout=10_000)  # the 2 s poll, through htmx
    expect(page.get_by_label("Progress: 100%")).to_be_visible()
    expect(page.locator("figure.chart canvas")).to_have_count(5)
    screenshot(page, "csp-run-finished-1280")
    assert violations() == []


def test_the_other_pages_with_scripts_report_no_violation(page, live_server, admin_user, violations):
    project = ProjectFactory(name="Helpful answers")
    project.prompts.create(text="Say hello.", needs_demonstration=True)
    project.labelers.add(admin_user)
    log_in(page, live_server, "admin")
    pages = {
        "dashboard": (f"/training/projects/{project.pk}/dashboard/", "h1"),
        "project": (f"/training/projects/{project.pk}/", "h1"),
        "demonstrations": (f"/projects/{project.pk}/demonstrations/", "textarea"),
        "admin-projects": ("/admin/labeling/project/", "#changelist"),
        "admin-project": (f"/admin/labeling/project/{project.pk}/change/", "#project_form"),
        "api-docs": ("/api/docs/", "text=/api/tasks/next/"),
        "browsable-api": ("/api/projects/", "text=Project List"),
    }
    for name, (url, ready) in pages.items():
        page.goto(f"{live_server.url}{url}")
        page.locator(ready).first.wait_for()
        screenshot(page, f"csp-{name}-1280")
    assert violations() == []


def test_a_locked_out_login_says_so_in_the_page(page, live_server, labeler, violations):
    page.goto(f"{live_server.url}/accounts/login/")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.get_by_label("Username").fill("labeler")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("alert").wait_for()
    expect(page.get_by_role("heading", name="Login refused")).to_be_visible()
    page.get_by_role("link", name="Back to the login page").click()
    page.get_by_label("Username").fill("labeler")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("even with the right password")
    screenshot(page, "csp-locked-out-1280")
    assert violations() == []
