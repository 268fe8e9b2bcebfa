"""Writing ideal answers in a real Chromium: the count, and a draft that survives leaving the page."""

import pytest
from playwright.sync_api import expect

from labeling.models import Demonstration
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in
from tests.factories import ProjectFactory, PromptFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_draft_is_kept_when_the_labeler_leaves_and_dropped_once_saved(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    PromptFactory(project=project, needs_demonstration=True, text="Explain <b>recursion</b> briefly.")
    PromptFactory(project=project, needs_demonstration=True, text="Name three primes.")
    log_in(page, live_server, "labeler")
    page.get_by_role("link", name="Write ideal answers (2)").click()
    expect(page.locator(".prompt .text")).to_have_text("Explain <b>recursion</b> briefly.")

    page.get_by_label("Your answer").fill("A function that calls itself")
    expect(page.locator("[data-char-count]")).to_have_text("28 / 20,000 characters")
    screenshot(page, "demonstration-1280")
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Write ideal answers (2)").click()
    expect(page.get_by_label("Your answer")).to_have_value("A function that calls itself")

    page.get_by_role("button", name="Save answer").click()
    expect(page.get_by_role("status")).to_have_text("Thank you: your answer was saved.")
    expect(page.locator(".prompt .text")).to_have_text("Name three primes.")
    expect(page.get_by_label("Your answer")).to_have_value("")
    assert Demonstration.objects.get().text == "A function that calls itself"
    # htmx runs the page's script on the new content once it settles: wait for the draft to go.
    page.wait_for_function("Object.keys(localStorage).every((k) => !k.startsWith('demo-draft:'))")
