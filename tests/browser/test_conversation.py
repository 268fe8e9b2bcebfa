"""A conversation in a real Chromium: the thread with roles, Markdown and escaped HTML above the
replies; ranked by keyboard; continued under the best reply into a child prompt whose K replies,
once sampled by the tiny model, come back as a new task."""

import pytest
from playwright.sync_api import expect

from labeling.models import ComparisonTask, Prompt
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in, task_id_in_url, wait_until_ready
from tests.factories import ComparisonTaskFactory
from training.executors import carry_out

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THREAD = [
    {"role": "system", "content": "You are a patient Markdown tutor."},
    {"role": "user", "content": "How do I make text **bold**?"},
    {"role": "assistant", "content": "Put it between double asterisks: `**like this**`."},
    {"role": "user", "content": "And code?\n\n```python\nprint('hi')\n```"},
    {"role": "assistant", "content": "Indent it, or fence it with three backticks as you did."},
    {"role": "user", "content": "Does <script>alert(1)</script> run here?"},
]


def test_rank_a_conversations_next_turn_by_keyboard_and_continue_it(page, live_server, labeler, tiny_project,
                                                                     monkeypatch):  # fmt: skip
    tiny_project.continue_conversations = True
    tiny_project.save()
    tiny_project.labelers.add(labeler)
    prompt = tiny_project.prompts.create(text=THREAD[-1]["content"], messages=THREAD)
    task = ComparisonTaskFactory(prompt=prompt, policy_version=tiny_project.policies.get(version=0))
    launched = []
    monkeypatch.setattr("training.services.send_on_commit", launched.append)  # the test is the worker
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    log_in(page, live_server, "labeler")

    page.goto(f"{live_server.url}/projects/{tiny_project.pk}/next/")
    assert task_id_in_url(page) == task.pk
    thread = page.locator(".thread")
    expect(page.locator("#prompt-heading")).to_contain_text("Conversation")
    expect(thread.locator(".message .role")).to_have_text(["System", "User", "Assistant", "User", "Assistant", "User"])
    expect(thread.locator(".earlier")).not_to_have_attribute("open", "")  # the first turn folded away
    expect(thread.locator(".message.role-user").last).to_contain_text("Does <script>alert(1)</script> run here?")
    expect(thread.locator("pre code")).to_have_text("print('hi')\n")
    thread.locator(".earlier summary").click()
    expect(thread.locator("strong")).to_have_text("bold")
    screenshot(page, "conversation")
    page.set_viewport_size({"width": 1280, "height": 1000})
    screenshot(page, "conversation-window", full_page=False)  # the ranking bar where a person sees it

    wait_until_ready(page, count=3)
    page.locator("#task h1").focus()  # keys typed into the opened <summary> would not rank
    for key in "CAB":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.locator("#continue-heading")).to_be_visible()
    expect(page.locator(".continue")).to_contain_text("Answer C, which you ranked best")
    expect(page.locator("#next-message")).to_be_focused()
    page.keyboard.type("Thanks! Show me a table too?")
    screenshot(page, "conversation-continue")
    page.get_by_role("button", name="Continue the conversation").click()
    expect(page.locator(".notice")).to_contain_text("the model's replies to your message will come as a new task")

    child = Prompt.objects.get(parent=prompt)
    best = task.display_completions()[2]
    assert child.messages == [*THREAD, {"role": "assistant", "content": best.text},
                              {"role": "user", "content": "Thanks! Show me a table too?"}]  # fmt: skip
    assert [(run.kind, run.prompts) for run in launched] == [("generate", 1)]
    sampled = carry_out(launched[0].pk)  # the generation worker's part
    assert sampled.status == "succeeded", sampled.error
    new_task = ComparisonTask.objects.get(prompt=child)

    page.goto(f"{live_server.url}/projects/{tiny_project.pk}/next/")
    assert task_id_in_url(page) == new_task.pk
    expect(page.locator(".thread .message.role-user").last.locator(".text")).to_have_text(
        "Thanks! Show me a table too?"
    )
    expect(page.locator(".thread .message.role-assistant").last).to_contain_text(best.text)  # the reply chosen
    expect(page.locator(".completions .completion")).to_have_count(3)
    screenshot(page, "conversation-child")
    assert not errors
