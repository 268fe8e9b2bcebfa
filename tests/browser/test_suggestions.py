"""The AI judge's suggestions in a real Chromium: after submit, its order shows only once the labeler's
own is sent; pre-filled, the ranking bar starts in its order and the labeler changes it by keyboard."""

import pytest
from playwright.sync_api import expect

from labeling.models import Project, Ranking
from labeling.services import do_set_judge, do_store_ai_ranking
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in, order_of
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def judged(db):
    """A K=3 project with one task the AI judge ranked B > C > A, and its labeler."""
    project = ProjectFactory(name="Suggestions", k=3)
    labeler = UserFactory(username="ranker")
    project.labelers.add(labeler)
    task = ComparisonTaskFactory(prompt__project=project, prompt__text="Which answer is plainest?")
    judge = do_set_judge(project, backend="local", model="bundled")
    do_store_ai_ranking(task.pk, judge, order_of(task, ["B", "C", "A"]), {"judge": judge.identity})
    return project, task


def test_after_submit_the_judges_order_shows_only_once_the_ranking_is_sent(page, live_server, judged):
    project, task = judged
    log_in(page, live_server, "ranker")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    expect(page.locator("[data-rank-hint]")).to_have_text("3 left to place.")
    expect(page.get_by_text("AI judge")).to_have_count(0)
    page.keyboard.press("A")
    page.keyboard.press("B")
    page.keyboard.press("C")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text(
        "The AI judge ranked it B > C > A: you agree on 1 of the 3 pairs you both ordered."
    )
    screenshot(page, "suggestion-after-submit", full_page=False)
    assert Ranking.objects.get(task=task, ai=False).suggestion == {}


def test_a_prefilled_order_is_set_and_the_labeler_changes_it_by_keyboard(page, live_server, judged):
    project, task = judged
    Project.objects.filter(pk=project.pk).update(suggestions=Project.Suggestions.PREFILLED)
    log_in(page, live_server, "ranker")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    expect(page.locator(".notice.suggestion")).to_contain_text("starts in the AI judge's order")
    expect(page.locator("[data-rank-list] > li.chip")).to_have_text(["›B", "›C", "›A"])
    expect(page.locator("[data-rank-hint]")).to_have_text("Every answer is placed: press Enter or Submit.")
    screenshot(page, "suggestion-prefilled")
    page.keyboard.press("Backspace")  # takes A back
    page.keyboard.press("Backspace")  # and C
    page.keyboard.press("A")
    page.keyboard.press("=")
    page.keyboard.press("C")  # B > A = C
    expect(page.locator("[data-rank-list] > li.chip")).to_have_text(["›B", "›A", "=C"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("is saved")
    ranking = Ranking.objects.get(task=task, ai=False)
    assert ranking.order == order_of(task, ["B", "AC"])
    assert ranking.suggestion == {"shown": "prefilled", "order": order_of(task, ["B", "C", "A"]), "changed": True}
