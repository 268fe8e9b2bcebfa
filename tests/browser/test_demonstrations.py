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


def test_the_prompt_renders_as_markdown_and_a_project_asking_for_none_says_so(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers", guidelines="Answer as a **patient** teacher would.")
    project.labelers.add(labeler)
    other = ProjectFactory(name="Ranking only")
    other.labelers.add(labeler)
    PromptFactory(
        project=project,
        needs_demonstration=True,
        text="Explain what this does, **step by step**:\n\n```python\nprint(sum(x * x for x in range(10)))\n```\n"
        "<script>alert(1)</script>",
    )
    log_in(page, live_server, "labeler")
    expect(page.get_by_role("link", name="Write ideal answers")).to_have_count(1)  # only where asked for
    page.get_by_role("link", name="Write ideal answers (1)").click()
    prompt = page.locator(".prompt .text")
    expect(prompt.locator("strong")).to_have_text("step by step")
    expect(prompt.locator("pre > code")).to_have_text("print(sum(x * x for x in range(10)))\n")
    expect(prompt).to_contain_text("<script>alert(1)</script>")
    assert prompt.locator("script").count() == 0
    page.get_by_label("Your answer").fill("It adds up the squares of 0 to 9 and prints 285.")
    screenshot(page, "demonstration-markdown-1280")

    page.goto(f"{live_server.url}/projects/{other.pk}/demonstrations/")
    expect(page.get_by_role("heading", name="No ideal answers asked for")).to_be_visible()
    expect(page.locator("#demo")).to_contain_text("Ranking only does not ask for ideal answers at the moment.")
    screenshot(page, "demonstration-none-asked-1280")
