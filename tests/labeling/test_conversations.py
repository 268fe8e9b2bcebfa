"""Conversations on the web side: import in the OpenAI / TRL messages form beside today's lines, the
thread on the ranking page, the API's messages and the conversational exports. No torch here."""

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeling.conversations import Message, check_messages, continued, plain_transcript
from labeling.exporting import export_rows
from labeling.importing import do_import_prompt_file, do_import_prompts, parse_records
from labeling.models import Demonstration, Prompt
from tests.factories import AssignmentFactory, ComparisonTaskFactory, ProjectFactory, PromptFactory
from tests.labeling.test_api import client_for
from tests.labeling.test_exporting import ranked_task

pytestmark = pytest.mark.django_db

THREE_TURNS = [
    {"role": "system", "content": "You answer in one short paragraph."},
    {"role": "user", "content": "What is **bold** in Markdown?"},
    {"role": "assistant", "content": "Text between two pairs of asterisks, like `**this**`."},
    {"role": "user", "content": "And a code block?\n\n```python\nprint('red')\n```"},
    {"role": "assistant", "content": "A fence of three backticks around the lines."},
    {"role": "user", "content": "Is <script>alert(1)</script> run?"},
]


def import_lines(project, *lines: object, atomic: bool = False):
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return do_import_prompt_file(project, io.BytesIO(text.encode()), "chat.jsonl", atomic=atomic)


def test_a_file_mixing_single_turn_and_multi_turn_lines_imports_both():
    project = ProjectFactory()
    report = import_lines(
        project,
        {"prompt": "Plain as today?", "topic": "a"},
        {"messages": THREE_TURNS, "topic": "b"},
        {"prompt": THREE_TURNS[1:4]},
        {"messages": [{"role": "user", "content": "One user message"}]},
    )
    assert (report.imported, report.invalid_count) == (4, 0)
    plain, whole, trl, single = Prompt.objects.filter(project=project).order_by("id")
    assert (plain.text, plain.messages, plain.metadata) == ("Plain as today?", [], {"topic": "a"})
    assert whole.messages == THREE_TURNS and whole.text == THREE_TURNS[-1]["content"]
    assert whole.metadata == {"topic": "b"}
    assert trl.chat == tuple(Message(m["role"], m["content"]) for m in THREE_TURNS[1:4])
    assert (single.text, single.messages) == ("One user message", [])  # stored as the plain prompt it is


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"role": "robot", "content": "hi"}], "message 1 has role 'robot'; a role is one of system, user, assistant"),
        ([{"role": "user", "content": "  "}], "message 1 (user) is empty"),
        (THREE_TURNS[:3], "the conversation must end with the user's message"),
        ([THREE_TURNS[1], THREE_TURNS[0]], "a system message may only come first"),
        ([THREE_TURNS[1], THREE_TURNS[1]], "message 2 is the user's where the assistant's turn comes"),
        ([{"role": "system", "content": "Be brief."}], "a conversation needs a user message"),
        ([], "the messages must be a non-empty list"),
        (["hi"], 'message 1 is not an object with "role" and "content"'),
    ],
)
def test_a_bad_conversation_is_named_by_its_line_and_nothing_of_an_atomic_file_is_stored(messages, reason):
    project = ProjectFactory()
    report = import_lines(project, {"prompt": "Fine"}, {"messages": messages}, atomic=True)
    assert report.rolled_back and report.invalid_count == 1
    assert report.invalid[0].line == 2 and reason in report.invalid[0].reason
    assert not Prompt.objects.filter(project=project).exists()


def test_a_line_with_both_prompt_and_messages_is_refused():
    report = import_lines(ProjectFactory(), {"prompt": "a", "messages": THREE_TURNS})
    assert report.invalid[0].reason.startswith('both "prompt" and "messages"')


def test_the_same_conversation_twice_is_a_duplicate_but_its_last_message_alone_is_another_prompt():
    project = ProjectFactory()
    PromptFactory(project=project, text=THREE_TURNS[-1]["content"])
    report = import_lines(project, {"messages": THREE_TURNS}, {"messages": THREE_TURNS})
    assert (report.imported, report.duplicates) == (1, 1)
    assert Prompt.objects.filter(project=project).count() == 2


def test_existing_single_turn_prompts_keep_their_key():
    prompt = PromptFactory(text="Unchanged?")
    assert prompt.text_sha256 == __import__("hashlib").sha256(b"Unchanged?").hexdigest()
    assert prompt.chat == "Unchanged?"


def test_the_api_imports_a_conversation_and_a_leased_task_returns_its_messages(admin_user, labeler):
    project = ProjectFactory(name="Chat API")
    project.labelers.add(labeler)
    response = client_for(admin_user).post(
        f"/api/projects/{project.pk}/prompts/", {"prompts": ["plain", {"messages": THREE_TURNS}]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["imported"] == 2
    conversation = next(p for p in Prompt.objects.filter(project=project) if p.messages)
    task = ComparisonTaskFactory(prompt=conversation, project=project)
    leased = client_for(labeler).get(f"/api/tasks/next/?project={project.pk}")
    assert leased.status_code in (200, 201), leased.content
    body = leased.json()
    assert body["id"] == task.pk
    assert body["messages"] == THREE_TURNS and body["prompt"] == THREE_TURNS[-1]["content"]


@pytest.fixture
def conversation_task(labeler):
    project = ProjectFactory(name="Chats", k=3)
    project.labelers.add(labeler)
    prompt = PromptFactory(project=project, text=THREE_TURNS[-1]["content"], messages=THREE_TURNS)
    task = ComparisonTaskFactory(prompt=prompt, project=project)
    AssignmentFactory(task=task, labeler=labeler)
    return task


def test_the_ranking_page_shows_the_thread_with_roles_markdown_and_escaped_html(client, labeler, conversation_task):
    client.force_login(labeler)
    body = client.get(reverse("labeling:task", args=[conversation_task.pk])).content.decode()
    assert "Conversation" in body and "rank the assistant's next reply" in body
    assert body.count('class="message role-user"') == 3 and body.count('class="message role-assistant"') == 2
    assert body.count('class="message role-system"') == 1
    assert "<strong>bold</strong>" in body
    assert "<code class=\"language-python\">print('red')" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    # Five turns after the system message: the last four shown, the first one behind "Show 1 earlier message".
    assert "Show 1 earlier message</summary>" in body
    assert "did not see" not in body


def test_the_page_says_when_the_model_saw_only_the_later_turns(client, labeler, conversation_task):
    conversation_task.display_completions()[0].__class__.objects.filter(tasks=conversation_task).update(
        sampling={"seed": 0, "messages_left_out": 2}
    )
    client.force_login(labeler)
    body = client.get(reverse("labeling:task", args=[conversation_task.pk])).content.decode()
    assert "The model did not see the 2 oldest messages" in body


def test_a_single_turn_task_looks_as_it_did(client, labeler, conversation_task):
    task = ComparisonTaskFactory(prompt__project=conversation_task.project, prompt__text="Just **one** question")
    AssignmentFactory(task=task, labeler=labeler)
    client.force_login(labeler)
    body = client.get(reverse("labeling:task", args=[task.pk])).content.decode()
    assert '<h2 id="prompt-heading">Prompt</h2>' in body and "<strong>one</strong>" in body
    assert 'class="message' not in body


@pytest.fixture
def chat_project(labeler, other_labeler):
    project = ProjectFactory(name="Export chats", k=3)
    from tests.factories import PolicyVersionFactory

    PolicyVersionFactory(project=project, version=1)
    ranked_task(project, "Plain?", ["yes", "no", "maybe"], "A BC", labeler)
    chat = ranked_task(project, "unused", ["Sure.", "No."], "B A", other_labeler)
    Prompt.objects.filter(pk=chat.task.prompt_id).update(text=THREE_TURNS[-1]["content"], messages=THREE_TURNS)
    return project


def test_the_conversational_export_is_trls_messages_form_with_ties_in_the_rankings_form(chat_project):
    pairs = list(export_rows(chat_project, "conversational"))
    assert pairs[:2] == [
        {"prompt": [{"role": "user", "content": "Plain?"}], "chosen": [{"role": "assistant", "content": "yes"}],
         "rejected": [{"role": "assistant", "content": "no"}]},
        {"prompt": [{"role": "user", "content": "Plain?"}], "chosen": [{"role": "assistant", "content": "yes"}],
         "rejected": [{"role": "assistant", "content": "maybe"}]},
    ]  # fmt: skip
    assert pairs[2] == {"prompt": THREE_TURNS, "chosen": [{"role": "assistant", "content": "No."}],
                        "rejected": [{"role": "assistant", "content": "Sure."}]}  # fmt: skip
    assert len(pairs) == 3  # the tie (B = C) is dropped from pairs...
    rankings = list(export_rows(chat_project, "rankings"))
    assert rankings[0]["order"] == [[rankings[0]["completions"][0]["id"]],
                                    [c["id"] for c in rankings[0]["completions"][1:]]]  # fmt: skip
    assert rankings[1]["prompt_messages"] == THREE_TURNS  # ...and kept, with the K-way order, in rankings
    half = list(export_rows(chat_project, "conversational", ties="half"))
    assert len(half) == 5


def test_demonstrations_export_as_sft_messages(chat_project, labeler):
    chat = Prompt.objects.get(project=chat_project, text=THREE_TURNS[-1]["content"])
    Demonstration.objects.create(prompt=chat, labeler=labeler, text="No: it is shown as text.")
    out = io.StringIO()
    call_command("export_preferences", "--project", "Export chats", "--format", "demonstrations", stdout=out,
                 stderr=io.StringIO())  # fmt: skip
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows == [{"messages": [*THREE_TURNS, {"role": "assistant", "content": "No: it is shown as text."}]}]


def test_conversation_helpers():
    chat = check_messages(THREE_TURNS[1:4], 1000)
    longer = continued(chat, "Like this.", "Thanks!")
    assert [m.role for m in longer] == ["user", "assistant", "user", "assistant", "user"]
    assert continued("Hi?", "Hello.", "How are you?") == (
        Message("user", "Hi?"), Message("assistant", "Hello."), Message("user", "How are you?"),
    )  # fmt: skip
    assert plain_transcript(chat).endswith("User: And a code block?\n\n```python\nprint('red')\n```\n\nAssistant:")
    with pytest.raises(ValueError, match="the limit is 10"):
        check_messages(THREE_TURNS[1:2], 10)


def test_api_records_take_the_messages_form():
    report = do_import_prompts(ProjectFactory(), parse_records([{"prompt": THREE_TURNS}, {"messages": "x"}]), "api")
    assert report.imported == 1 and report.invalid[0].reason == '"messages" is a string, not a list of messages'


# --- continuing a conversation ------------------------------------------------------------------


@pytest.fixture
def continuing(labeler):
    """A project that continues conversations, and a leased two-reply task on THREE_TURNS."""
    project = ProjectFactory(name="Continue", k=2, continue_conversations=True, max_turns=4)
    project.labelers.add(labeler)
    prompt = PromptFactory(project=project, text=THREE_TURNS[-1]["content"], messages=THREE_TURNS)
    task = ComparisonTaskFactory(prompt=prompt, project=project)
    AssignmentFactory(task=task, labeler=labeler)
    return task


def rank_second_first(client, task):
    first, second = task.display_completions()
    return client.post(reverse("labeling:submit", args=[task.pk]), {f"rank-{first.pk}": "2", f"rank-{second.pk}": "1"})


def test_after_ranking_the_labeler_may_write_the_next_user_message_under_the_best_reply(
    client, labeler, continuing, django_capture_on_commit_callbacks
):
    from labeling.signals import conversation_continued

    told = []
    conversation_continued.connect(lambda sender, prompt, **kw: told.append(prompt.pk), weak=False, dispatch_uid="t")
    try:
        client.force_login(labeler)
        page = rank_second_first(client, continuing).content.decode()
        assert "Continue the conversation" in page and "Answer B, which you ranked best" in page
        best = continuing.display_completions()[1]
        url = reverse("labeling:continue", args=[continuing.pk])
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"text": "  Thanks. One more?  "})
            again = client.post(url, {"text": "Thanks. One more?"})  # a double submit
    finally:
        conversation_continued.disconnect(dispatch_uid="t")
    assert response.status_code == 302 and again.status_code == 302
    child = Prompt.objects.get(parent=continuing.prompt)
    assert child.messages == [*THREE_TURNS, {"role": "assistant", "content": best.text},
                              {"role": "user", "content": "Thanks. One more?"}]  # fmt: skip
    assert (child.text, child.source, child.metadata["from_task"]) == ("Thanks. One more?", "continued", continuing.pk)
    assert told == [child.pk]  # training was told once, after the commit


def test_a_continuation_is_refused_in_words_when_it_cannot_be(client, labeler, continuing):
    client.force_login(labeler)
    url = reverse("labeling:continue", args=[continuing.pk])
    early = client.post(url, {"text": "Next?"})
    assert early.status_code == 422 and "Rank the replies first" in early.content.decode()
    rank_second_first(client, continuing)
    empty = client.post(url, {"text": "   "})
    assert empty.status_code == 422 and "Write the user&#x27;s next message first." in empty.content.decode()
    type(continuing.project).objects.filter(pk=continuing.project_id).update(max_turns=3)
    capped = client.post(url, {"text": "Next?"})
    assert "reached the project&#x27;s limit of 3 user turns" in capped.content.decode()
    type(continuing.project).objects.filter(pk=continuing.project_id).update(continue_conversations=False)
    off = client.post(url, {"text": "Next?"})
    assert "This project does not continue conversations." in off.content.decode()
    assert not Prompt.objects.filter(parent=continuing.prompt).exists()


def test_a_project_that_does_not_continue_goes_straight_to_the_next_task(client, labeler, conversation_task):
    client.force_login(labeler)
    first, second, third = conversation_task.display_completions()
    response = client.post(reverse("labeling:submit", args=[conversation_task.pk]),
                           {f"rank-{first.pk}": "1", f"rank-{second.pk}": "2", f"rank-{third.pk}": "3"})  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:next", args=[conversation_task.project_id])


def test_staff_browse_a_conversation_tree_from_its_root():
    from labeling.services import conversation_tree

    root = PromptFactory(text="Root?")
    a = PromptFactory(project=root.project, text="a", parent=root)
    b = PromptFactory(project=root.project, text="b", parent=root)
    a1 = PromptFactory(project=root.project, text="a1", parent=a)
    assert [(depth, p.text) for depth, p in conversation_tree(root)] == [(0, "Root?"), (1, "a"), (2, "a1"), (1, "b")]
    assert a1.parent.parent == root and b.parent == root


def test_an_ideal_answer_to_a_conversation_is_written_under_its_thread(client, labeler):
    project = ProjectFactory(name="Demos")
    project.labelers.add(labeler)
    PromptFactory(project=project, text=THREE_TURNS[-1]["content"], messages=THREE_TURNS, needs_demonstration=True)
    client.force_login(labeler)
    body = client.get(reverse("labeling:demonstrations", args=[project.pk])).content.decode()
    assert "write the assistant&#x27;s next reply" in body or "write the assistant's next reply" in body
    assert body.count('class="message role-') == len(THREE_TURNS)
