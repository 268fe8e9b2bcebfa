"""Conversations through the loop on the tiny model: sampled through the chat template, a round (RM,
RLOO, new comparisons) on multi-turn prompts, a continued conversation sampled first, and a
conversation longer than the model's context cut from its oldest turns with the page saying so."""

import pytest
from django.urls import reverse

from labeling.conversations import as_dicts, continued
from labeling.models import ComparisonTask, Prompt
from tests.factories import AssignmentFactory, rank_every_task
from tests.training.test_rounds import FAST
from training.executors import carry_out
from training.models import PolicyVersion, TrainingRun
from training.services import create_run, sample_continuation

pytestmark = pytest.mark.django_db

CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Count to {n}."},
     {"role": "assistant", "content": "1 2"}, {"role": "user", "content": "And on?"}]
    for n in range(3)
]  # fmt: skip


@pytest.fixture
def chat_project(tiny_project, labeler):
    """The tiny project with three multi-turn prompts beside its five single-turn ones, all ranked."""
    for messages in CONVERSATIONS:
        tiny_project.prompts.create(text=messages[-1]["content"], messages=messages)
    for field, value in FAST.items():
        setattr(tiny_project.recipe, field, value)
    tiny_project.recipe.save()
    sampled = carry_out(create_run(tiny_project, "generate", prompts=8).pk)
    assert sampled.status == TrainingRun.Status.SUCCEEDED, sampled.error
    rank_every_task(tiny_project, labeler)
    return tiny_project


def test_a_round_on_multi_turn_prompts_runs_end_to_end(chat_project):
    conversation_tasks = [t for t in ComparisonTask.objects.select_related("prompt") if t.prompt.messages]
    assert len(conversation_tasks) == 3 and all(len(t.display_completions()) == 3 for t in conversation_tasks)
    round_ = carry_out(create_run(chat_project, "round").pk)
    assert round_.status == TrainingRun.Status.SUCCEEDED, round_.error
    assert [(s.kind, s.status) for s in round_.steps.order_by("id")] == [
        ("rm", "succeeded"), ("rloo", "succeeded"), ("generate", "succeeded"),
    ]  # fmt: skip
    new = PolicyVersion.objects.get(project=chat_project, version=1)
    fresh = ComparisonTask.objects.filter(policy_version=new).select_related("prompt")
    assert sum(1 for task in fresh if task.prompt.messages) == 3  # the new policy answered the conversations


def test_a_continued_conversation_is_sampled_first_into_a_new_task(chat_project, labeler, settings):
    parent = Prompt.objects.filter(project=chat_project).exclude(messages=[]).first()
    messages = continued(parent.chat, "1 2 3", "Now backwards?")
    Prompt.objects.create(project=chat_project, text="Older and unsampled?")
    child = Prompt.objects.create(project=chat_project, text="Now backwards?", messages=as_dicts(messages),
                                  parent=parent)  # fmt: skip
    sampled = carry_out(create_run(chat_project, "generate", prompts=1).pk)
    assert sampled.status == TrainingRun.Status.SUCCEEDED, sampled.error
    assert list(ComparisonTask.objects.filter(prompt=child).values_list("state", flat=True)) == ["open"]


def test_the_continuation_signal_launches_a_sampling_run_of_one_prompt(chat_project, monkeypatch):
    sent = []
    monkeypatch.setattr("training.services.send_on_commit", lambda run: sent.append(run))
    sample_continuation(Prompt, prompt=chat_project.prompts.first())
    assert [(run.kind, run.prompts) for run in sent] == [("generate", 1)]


def test_a_conversation_longer_than_the_context_loses_its_oldest_turns_and_the_page_says_so(
    tiny_project, labeler, client
):
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 60} for i in range(13)]
    prompt = tiny_project.prompts.create(text=long[-1]["content"], messages=long)  # about 1,000 tokens; context 512
    run = carry_out(create_run(tiny_project, "generate", prompts=6).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    task = ComparisonTask.objects.get(prompt=prompt)
    left_out = {c.sampling["messages_left_out"] for c in task.display_completions()}
    assert len(left_out) == 1 and left_out.pop() % 2 == 0  # whole exchanges, oldest first
    tiny_project.labelers.add(labeler)
    AssignmentFactory(task=task, labeler=labeler)
    client.force_login(labeler)
    body = client.get(reverse("labeling:task", args=[task.pk])).content.decode()
    assert "The model did not see the" in body and "oldest messages" in body


def test_evaluate_policy_samples_conversations_and_judges_their_last_message(tiny_project, tmp_path, capsys):
    import io
    import json

    from django.core.management import call_command

    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in CONVERSATIONS) + '{"prompt": "Plain?"}\n')
    monkeypatched = "tests.training.test_conversation_rounds:_counting_preference"
    _SEEN.clear()
    base = tiny_project.policies.get(version=0)  # a second version on the same weights: two sides to compare
    PolicyVersion.objects.create(project=tiny_project, version=1, checkpoint=base.checkpoint, parent=base)
    call_command("evaluate_policy", "--project", tiny_project.name, "--preference", monkeypatched, "--a", "0", "--b",
                 "1", "--prompts", str(path), stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    assert _SEEN == ["And on?"] * 3 + ["Plain?"]  # the preference reads what labelers read: the last message


def test_a_blind_evaluations_hold_out_file_of_conversations_is_refused_in_words(tiny_project, tmp_path):
    import json

    from django.core.management import CommandError, call_command

    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATIONS[0]}) + "\n")
    with pytest.raises(CommandError, match="holds conversations: import them with import_prompts"):
        call_command("blind_evaluation", "--project", tiny_project.name, "--hold-out", str(path))
    assert not tiny_project.prompts.filter(heldout=True).exists()


_SEEN: list[str] = []


def _counting_preference(prompt: str, completions: list[str]) -> list[float]:
    _SEEN.append(prompt)
    return [float(len(c)) for c in completions]
