"""A newcomer's walk in a real Chromium, at a desktop's width and a phone's: the ranking bar never
hides an answer's letter, running out of tasks is not a dead end (the page swaps the next task in
when one is sampled), and staff find the training side from the first page. Screenshots of each
page go to var/screenshots/."""

import pytest
from playwright.sync_api import expect

from labeling.models import Completion
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import ids_by_letter, log_in, wait_until_ready
from tests.factories import ComparisonTaskFactory, ProjectFactory, PromptFactory
from training.models import PolicyVersion, TrainingRun
from training.services import do_register_base_policy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = {"1280": (1280, 800), "390": (390, 844)}


def long_task(project):
    """A task whose four answers are long enough that the page scrolls well past them."""
    task = ComparisonTaskFactory(prompt=PromptFactory(project=project, text="Explain how tides work."), k=4)
    for n, (letter, cid) in enumerate(sorted(ids_by_letter(task).items())):
        paragraph = (
            f"Answer {letter}. "
            + "The moon pulls the near side of the ocean a little harder than the far side. " * (4 + 2 * n)
        )
        Completion.objects.filter(pk=cid).update(text=paragraph)
    return task


@pytest.mark.parametrize("width", WIDTHS)
def test_scrolled_to_any_answer_its_letter_is_not_under_the_ranking_bar(page, live_server, labeler, width):
    project = ProjectFactory(name="Helpful answers", guidelines="Prefer answers that are **correct**.")
    project.labelers.add(labeler)
    long_task(project)
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    wait_until_ready(page)
    page.keyboard.press("B")
    bar = page.locator(".rank-bar")
    assert bar.bounding_box()["height"] < 0.2 * WIDTHS[width][1]  # a strip, not a third of the window
    for letter in "ABCD":
        card = page.locator(f'.completion[data-letter="{letter}"]')
        card.evaluate("el => el.scrollIntoView({block: 'start'})")
        box = card.locator(".letter").bounding_box()
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('.completion')?.dataset.letter ?? null",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit == letter, f"answer {letter}'s letter is covered at {width} px"
    page.evaluate("window.scrollTo(0, (document.documentElement.scrollHeight - window.innerHeight) / 2)")
    screenshot(page, f"ranking-scrolled-{width}", full_page=False)
    expect(page.locator("[data-progress]")).to_contain_text("ranked today")


def test_out_of_tasks_the_page_swaps_in_the_next_task_once_it_is_sampled(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers")
    base = do_register_base_policy(project)
    project.labelers.add(labeler)
    TrainingRun.objects.create(project=project, kind="generate", status="running", policy=base, prompts=50, k=4)
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    expect(page.locator(".out-of-tasks")).to_contain_text("the model is writing more comparisons now")
    screenshot(page, "out-of-tasks-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "out-of-tasks-390")
    task = ComparisonTaskFactory(prompt__project=project, policy_version=base, k=4)  # the sampler writes one
    expect(page.locator(".task-head .muted")).to_have_text(f"Task {task.pk}", timeout=15_000)  # polled every 5 s
    assert page.url.endswith(f"/tasks/{task.pk}/")
    wait_until_ready(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_staff_land_on_the_training_side_and_an_empty_project_says_what_comes_next(
    page, live_server, admin_user, width
):
    project = ProjectFactory(name="A new project")
    do_register_base_policy(project)
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    log_in(page, live_server, "admin")
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Training").click()
    expect(page.get_by_role("heading", name="Training", exact=True)).to_be_visible()
    page.get_by_role("link", name="Project home").click()
    expect(page.locator(".next-step")).to_contain_text("Nothing to rank yet: sample comparisons for the labelers.")
    expect(page.locator('form.launch.recommended[data-kind="generate"]')).to_be_visible()
    screenshot(page, f"project-home-empty-{width}")
    page.get_by_role("link", name="metrics dashboard").click()
    expect(page.locator(".stats")).to_contain_text("nothing yet")
    screenshot(page, f"dashboard-empty-{width}")
    assert PolicyVersion.objects.filter(project=project).count() == 1


def test_the_workers_table_keeps_its_progress_inside_its_card(page, live_server, admin_user):
    project = ProjectFactory(name="A project with a long name for its worker rows")
    base = do_register_base_policy(project)
    TrainingRun.objects.create(
        project=project, kind="rm", status="running", policy=base, progress=0.4,
        metrics=[{"phase": "held-out loss after epoch 3: the phase a reward-model run names while it trains"}],
    )  # fmt: skip
    TrainingRun.objects.create(project=project, kind="generate", status="queued", policy=base, prompts=50, k=4)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/")
    card = page.locator("#workers").bounding_box()
    for cell in page.locator("#workers td").all():  # the phase wraps: no cell runs past the card or into the next
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"] + 1, f"{cell.inner_text()!r} runs past its card"
    assert page.evaluate(
        "[...document.querySelectorAll('#workers .table-wrap')].every(w => w.scrollWidth <= w.clientWidth)"
    )
    screenshot(page, "project-home-workers-1280")
