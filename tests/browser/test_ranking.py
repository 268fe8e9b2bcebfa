"""The ranking page in a real Chromium: keyboard, drag and drop, escaping, layout, and no JavaScript.

Every wait is on something the page shows (or on the DOM order while a drag is held), never on
a fixed delay.
"""

import re

import pytest
from playwright.sync_api import expect

from labeling.models import ComparisonTask, Completion, Ranking
from tests.browser.conftest import screenshot
from tests.factories import PASSWORD, ComparisonTaskFactory, ProjectFactory, PromptFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_COMPLETION = "<img src=x onerror=alert(1)><script>alert(2)</script>"
XSS_PROMPT = '<b onmouseover=alert(3)>bold</b><svg onload=alert(4)></svg><script>alert(5)</script>"'


# --- helpers ---------------------------------------------------------------------------------


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar .who")).to_have_text(username)


def ids_by_letter(task: ComparisonTask) -> dict[str, int]:
    return {"ABCDEFGHI"[item.position]: item.completion_id for item in task.items.all()}


def order_of(task: ComparisonTask, groups: list[str]) -> list[list[int]]:
    """["C", "AD", "B"] -> [[id C], [id A, id D], [id B]] (ties in display order, as stored)."""
    ids = ids_by_letter(task)
    return [[ids[letter] for letter in sorted(group)] for group in groups]


def task_id_in_url(page) -> int:
    match = re.search(r"/tasks/(\d+)/$", page.url)
    assert match, page.url
    return int(match.group(1))


def wait_until_ready(page, count: int = 4) -> None:
    """rank.js has set up the form: the bar is shown and its hint says how many are left."""
    expect(page.locator("[data-rank-hint]")).to_have_text(f"{count} left to place.")
    expect(page.locator("[data-rank-list]")).to_be_visible()


def cids(page, where: str) -> list[str]:
    return page.locator(f"{where} > li.chip").evaluate_all("els => els.map((el) => el.dataset.cid)")


def expect_ranks(page, ranks: dict[int, str]) -> None:
    """The hidden selects (what gets posted) hold these rank numbers."""
    for cid, rank in ranks.items():
        expect(page.locator(f'select[name="rank-{cid}"]')).to_have_value(rank)


def center(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_to(page, chip, x: float, y: float, list_order: list[int]) -> None:
    """Drags a chip with the mouse (Sortable's fallback mode) and holds it over (x, y) until the
    rank list's DOM order shows the drop position, then lets go."""
    sx, sy = center(chip.locator("span").bounding_box())
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 6, sy + 6, steps=3)  # past Sortable's fallbackTolerance: the drag starts
    page.mouse.move(x, y, steps=12)
    page.wait_for_function(
        """(want) => {
            const got = Array.from(document.querySelectorAll("[data-rank-list] > li"))
                .filter((li) => !li.classList.contains("sortable-fallback"))
                .map((li) => li.dataset.cid);
            return JSON.stringify(got) === JSON.stringify(want);
        }""",
        arg=[str(cid) for cid in list_order],
    )
    page.mouse.up()


def drag_pool_chip_to_end(page, cid: int, list_order: list[int]) -> None:
    chip = page.locator(f'[data-rank-pool] li.chip[data-cid="{cid}"]')
    listed = page.locator("[data-rank-list] > li.chip")
    bar = page.locator("[data-rank-list]").bounding_box()
    if listed.count() == 0:
        x, y = center(bar)
    else:
        last = listed.last.bounding_box()
        x, y = last["x"] + last["width"] + 40, last["y"] + last["height"] / 2
        assert x < bar["x"] + bar["width"], "no room in the rank list to drop after the last chip"
    drag_to(page, chip, x, y, list_order)
    # rank.js rebuilds the bar from the DOM after the drop: the chip gets its tie button.
    expect(page.locator(f'[data-rank-list] li.chip[data-cid="{cid}"] button.tie')).to_have_count(1)
    expect(page.locator(f'[data-rank-pool] li.chip[data-cid="{cid}"]')).to_have_count(0)


# --- tests -----------------------------------------------------------------------------------


def test_keyboard_ranking_with_a_tie_submits_in_place(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    tasks = [ComparisonTaskFactory(prompt__project=project, k=4) for _ in range(2)]
    log_in(page, live_server, "labeler")

    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    first = ComparisonTask.objects.get(pk=task_id_in_url(page))
    second = next(t for t in tasks if t.pk != first.pk)
    ids = ids_by_letter(first)
    expect(page.locator(".task-head .muted")).to_have_text(f"Task {first.pk}")
    wait_until_ready(page)

    # A wrong key, undone with Backspace.
    page.keyboard.press("B")
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(1)
    expect_ranks(page, {ids["B"]: "1"})
    page.keyboard.press("Backspace")
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(0)
    expect_ranks(page, {ids["B"]: ""})

    # "=" then Backspace cancels the pending tie without removing anything.
    page.keyboard.press("C")
    page.keyboard.press("=")
    expect(page.locator("[data-rank-hint]")).to_contain_text("the next one ties with the previous")
    page.keyboard.press("Backspace")
    expect(page.locator("[data-rank-hint]")).to_have_text("3 left to place.")
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(1)

    # C best, then A = D, then B (the number key 2 places B, the second answer).
    page.keyboard.press("A")
    page.keyboard.press("=")
    page.keyboard.press("D")
    page.keyboard.press("2")
    expect(page.locator("[data-rank-hint]")).to_have_text("Every answer is placed: press Enter or Submit.")
    assert cids(page, "[data-rank-list]") == [str(ids[x]) for x in "CADB"]
    assert cids(page, "[data-rank-pool]") == []
    expect(page.locator(f'[data-rank-list] li.chip[data-cid="{ids["D"]}"]')).to_have_class(re.compile(r"\btied\b"))
    expect(page.locator(f'[data-rank-list] li.chip[data-cid="{ids["D"]}"] button.tie')).to_have_attribute(
        "aria-pressed", "true"
    )
    expect_ranks(page, {ids["C"]: "1", ids["A"]: "2", ids["D"]: "2", ids["B"]: "3"})
    expect(page.locator(f'.completion[data-cid="{ids["D"]}"] [data-rank-badge]')).to_have_text("#2")

    page.evaluate("window.__noReload = 1")
    page.keyboard.press("Enter")

    expect(page.locator(".task-head .muted")).to_have_text(f"Task {second.pk}")
    expect(page.locator(".prompt .text")).to_have_text(second.prompt.text)
    expect(page).to_have_url(f"{live_server.url}/tasks/{second.pk}/")
    assert page.evaluate("window.__noReload") == 1, "the page reloaded instead of swapping the next task in"
    wait_until_ready(page)  # the swapped-in form is set up again, with an empty bar

    ranking = Ranking.objects.get(task=first, labeler=labeler)
    assert ranking.order == order_of(first, ["C", "AD", "B"])
    assert ranking.time_spent_ms is not None and ranking.time_spent_ms > 0
    assert not Ranking.objects.filter(task=second).exists()


def test_mouse_drag_and_drop_ranking_with_a_tie(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    task = ComparisonTaskFactory(prompt__project=project, k=4)
    ids = ids_by_letter(task)
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    wait_until_ready(page)

    # Pool to list, in the order B, D, A, C.
    placed: list[int] = []
    for letter in "BDAC":
        placed.append(ids[letter])
        drag_pool_chip_to_end(page, ids[letter], placed)
    expect(page.locator("[data-rank-pool] > li")).to_have_count(0)
    expect_ranks(page, {ids["B"]: "1", ids["D"]: "2", ids["A"]: "3", ids["C"]: "4"})

    # Within the list: A onto B moves A to the front -> A, B, D, C.
    target = page.locator(f'[data-rank-list] li.chip[data-cid="{ids["B"]}"]').bounding_box()
    drag_to(
        page,
        page.locator(f'[data-rank-list] li.chip[data-cid="{ids["A"]}"]'),
        *center(target),
        [ids[x] for x in "ABDC"],
    )
    expect_ranks(page, {ids["A"]: "1", ids["B"]: "2", ids["D"]: "3", ids["C"]: "4"})
    assert cids(page, "[data-rank-list]") == [str(ids[x]) for x in "ABDC"]

    # D's "=" ties it with B.
    tie = page.locator(f'[data-rank-list] li.chip[data-cid="{ids["D"]}"] button.tie')
    expect(tie).to_have_attribute("aria-pressed", "false")
    tie.click()
    expect(page.locator(f'[data-rank-list] li.chip[data-cid="{ids["D"]}"] button.tie')).to_have_attribute(
        "aria-pressed", "true"
    )
    expect_ranks(page, {ids["A"]: "1", ids["B"]: "2", ids["D"]: "2", ids["C"]: "3"})
    # The first chip has no visible tie button.
    expect(page.locator(f'[data-rank-list] li.chip[data-cid="{ids["A"]}"] button.tie')).to_be_hidden()

    page.get_by_role("button", name="Submit ranking").click()
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    ranking = Ranking.objects.get(task=task, labeler=labeler)
    assert ranking.order == order_of(task, ["A", "BD", "C"])
    assert ranking.time_spent_ms is not None and ranking.time_spent_ms > 0


def test_prompt_and_completion_markup_is_shown_as_text(page, live_server, labeler):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    tasks = [
        ComparisonTaskFactory(prompt=PromptFactory(project=project, text=f"{XSS_PROMPT} {n}"), k=4) for n in (1, 2)
    ]
    for task in tasks:
        Completion.objects.filter(pk=ids_by_letter(task)["B"]).update(text=XSS_COMPLETION)
    log_in(page, live_server, "labeler")

    def check_shown_as_text(task: ComparisonTask) -> None:
        card = page.locator(f'.completion[data-letter="B"][data-cid="{ids_by_letter(task)["B"]}"]')
        expect(card.locator(".text")).to_have_count(1)
        assert card.locator(".text").inner_text() == XSS_COMPLETION
        assert card.locator("img, script").count() == 0
        prompt = page.locator(".prompt .text")
        assert prompt.inner_text() == task.prompt.text
        assert prompt.locator("b, svg, script").count() == 0
        assert page.locator("#task img, #task svg").count() == 0
        card.hover()  # no onmouseover handler could run either
        prompt.hover()

    # The first task by a full page load, the second swapped in by htmx.
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    first = ComparisonTask.objects.get(pk=task_id_in_url(page))
    second = next(t for t in tasks if t.pk != first.pk)
    wait_until_ready(page)
    check_shown_as_text(first)
    for key in "ABCD":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.locator(".task-head .muted")).to_have_text(f"Task {second.pk}")
    wait_until_ready(page)
    check_shown_as_text(second)

    # Let any pending script or image error run before asserting nothing fired: a round trip
    # through the page's event loop after the swap.
    page.evaluate("() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)))")
    assert dialogs == []


def test_ranking_page_screenshots_mid_ranking(page, live_server, labeler):
    project = ProjectFactory(
        name="Helpful answers",
        guidelines="Prefer answers that are **correct**, then clear, then short.",
    )
    project.labelers.add(labeler)
    prompt = PromptFactory(
        project=project, text="How do I undo the last commit in git but keep my changes in the working tree?"
    )
    task = ComparisonTaskFactory(prompt=prompt, k=4)
    texts = [
        "Run `git reset --soft HEAD~1`. The commit is removed and its changes stay staged.",
        "Use git revert HEAD.",
        "You can run:\n\n    git reset HEAD~1\n\nThis moves the branch back one commit and leaves the changes in "
        "your working tree, unstaged. If you have already pushed the commit, prefer `git revert` so you "
        "do not rewrite history that others may have pulled.",
        "git reset --hard HEAD~1 (careful: this throws the changes away). " + "A long-unbroken-word-" * 6,
    ]
    for letter, text in zip("ABCD", texts, strict=True):
        Completion.objects.filter(pk=ids_by_letter(task)[letter]).update(text=text)
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    wait_until_ready(page)

    # C best, then A = D; B still in the pool.
    for key in ["C", "A", "=", "D"]:
        page.keyboard.press(key)
    expect(page.locator("[data-rank-hint]")).to_have_text("1 left to place.")
    expect(page.locator("[data-rank-pool] > li.chip")).to_have_count(1)
    screenshot(page, "ranking-1280", full_page=False)  # as a person sees it: the bar at the window's bottom

    page.set_viewport_size({"width": 375, "height": 740})
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(3)
    screenshot(page, "ranking-375", full_page=False)
    # Nothing on the narrow page is wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_ranking_without_javascript(browser, live_server, labeler):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        project = ProjectFactory(name="Helpful answers")
        project.labelers.add(labeler)
        tasks = [ComparisonTaskFactory(prompt__project=project, k=4) for _ in range(2)]
        log_in(page, live_server, "labeler")
        page.get_by_role("link", name="Start labeling").click()
        expect(page.locator(".task-head .muted")).to_have_text(re.compile(r"Task \d+"))
        first = ComparisonTask.objects.get(pk=task_id_in_url(page))
        second = next(t for t in tasks if t.pk != first.pk)

        expect(page.locator(".rank-bar")).to_be_hidden()
        for letter, rank in zip("ABCD", ["2", "1", "3", "2"], strict=True):
            select = page.get_by_label(f"Rank of {letter}")
            expect(select).to_be_visible()
            select.select_option(rank)
        page.get_by_role("button", name="Submit ranking").click()

        expect(page).to_have_url(f"{live_server.url}/tasks/{second.pk}/")
        expect(page.locator(".task-head .muted")).to_have_text(f"Task {second.pk}")
        for letter in "ABCD":
            expect(page.get_by_label(f"Rank of {letter}")).to_have_value("")
        assert Ranking.objects.get(task=first, labeler=labeler).order == order_of(first, ["B", "AD", "C"])
    finally:
        context.close()


MARKDOWN_ANSWER = (
    "Use **bold** for the key step, then run `git status`.\n\n"
    "```python\n"
    "def undo_last_commit(repository_path: str, keep_changes_in_the_working_tree: bool = True) -> None:"
    "  # a long line that has to scroll\n"
    "    run(['git', 'reset', '--soft' if keep_changes_in_the_working_tree else '--hard', 'HEAD~1'])\n"
    "```\n\n"
    "<script>alert(1)</script> and [a link](javascript:alert(2))"
)


def test_answers_render_as_markdown_with_code_that_scrolls_and_markup_as_text(page, live_server, labeler):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    task = ComparisonTaskFactory(prompt=PromptFactory(project=project, text="How do I **undo** a commit?"), k=4)
    others = [
        "Two ways:\n\n1. `git reset --soft HEAD~1` keeps the changes staged\n2. `git revert HEAD` adds an undo commit",
        "| command | keeps changes |\n| --- | --- |\n"
        "| `git reset --soft HEAD~1` | yes |\n| `git reset --hard HEAD~1` | no |",
        "Just delete the .git folder.\nThen start again.",
    ]
    for letter, text in zip("ABCD", [MARKDOWN_ANSWER, *others], strict=True):
        Completion.objects.filter(pk=ids_by_letter(task)[letter]).update(text=text)
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    wait_until_ready(page)

    card = page.locator('.completion[data-letter="A"]')
    expect(card.locator(".text strong")).to_have_text("bold")
    expect(card.locator(".text p code")).to_have_text("git status")
    code = card.locator(".text pre > code")
    expect(code).to_contain_text("def undo_last_commit(")
    expect(card.locator(".text")).to_contain_text("<script>alert(1)</script> and [a link](javascript:alert(2))")
    assert card.locator("script, a").count() == 0
    expect(page.locator(".prompt .text strong")).to_have_text("undo")

    # The code is monospace and scrolls inside its card; the card stays in its grid column.
    pre = card.locator(".text pre")
    assert "monospace" in code.evaluate("(el) => getComputedStyle(el).fontFamily").lower()
    assert pre.evaluate("(el) => getComputedStyle(el).overflowX") == "auto"
    assert pre.evaluate("(el) => el.scrollWidth > el.clientWidth")
    other = page.locator('.completion[data-letter="B"]').bounding_box()
    assert card.bounding_box()["width"] == pytest.approx(other["width"], abs=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    screenshot(page, "ranking-markdown-1280")
    page.set_viewport_size({"width": 375, "height": 740})
    assert pre.evaluate("(el) => el.scrollWidth > el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "ranking-markdown-375")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Selecting text in an answer (to copy code, say) does not place it; a plain click does.
    code.select_text()
    code.click()
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(0)
    page.evaluate("window.getSelection().removeAllRanges()")
    card.locator(".text strong").click()
    expect(page.locator("[data-rank-list] > li.chip")).to_have_count(1)
    page.evaluate("() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)))")
    assert dialogs == []


def visible_messages(page) -> list[str]:
    """The texts of the ranking form's messages that show: the server's refusal and the hint."""
    shown = "(el) => el.offsetParent !== null && el.textContent.trim()"
    return page.locator("#task .error, [data-rank-hint]").evaluate_all(
        f"els => els.filter({shown}).map((el) => el.textContent.trim())"
    )


def test_a_refused_submit_shows_one_message_that_matches_the_state(page, live_server, labeler):
    project = ProjectFactory(name="Helpful answers")
    project.labelers.add(labeler)
    task = ComparisonTaskFactory(prompt__project=project, k=4)
    ids = ids_by_letter(task)
    log_in(page, live_server, "labeler")
    page.goto(f"{live_server.url}/projects/{project.pk}/next/")
    wait_until_ready(page)

    # Refused here: two answers placed, the button clicked. Nothing is posted.
    page.keyboard.press("C")
    page.keyboard.press("A")
    page.get_by_role("button", name="Submit ranking").click()
    refused = "Place every answer before submitting: B and D are not placed yet."
    expect(page.locator("[data-rank-hint]")).to_have_text(refused)
    assert visible_messages(page) == [refused]
    page.keyboard.press("B")
    assert visible_messages(page) == ["1 left to place."]
    page.keyboard.press("Enter")
    assert visible_messages(page) == ["Place every answer before submitting: D is not placed yet."]
    assert not Ranking.objects.exists()

    # Refused by the server: the bar is complete, but the posted form lacks D's rank (as a stale
    # or tampered page would send). The refusal names the letter, and is the one message.
    page.keyboard.press("D")
    page.evaluate(f"document.querySelector('select[name=\"rank-{ids['D']}\"]').value = ''")
    page.get_by_role("button", name="Submit ranking").click()
    server = "Rank every answer before submitting: answer D has no rank yet."
    expect(page.get_by_role("alert")).to_have_text(server)
    assert visible_messages(page) == [server]
    assert not Ranking.objects.exists()
    screenshot(page, "ranking-refused-1280")

    # Any change makes the refusal stale: the hint alone speaks for the ranking as it now is.
    page.keyboard.press("D")
    expect(page.get_by_role("alert")).to_have_count(0)
    assert visible_messages(page) == ["Every answer is placed: press Enter or Submit."]
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="All done for now")).to_be_visible()
    assert Ranking.objects.get(task=task, labeler=labeler).order == order_of(task, ["C", "A", "B", "D"])
