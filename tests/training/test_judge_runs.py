"""Judging runs: a tiny local model and an OpenAI-compatible endpoint this test serves on a free port
rank tasks as the project's AI labeler; failures and timeouts fail the run with the reason and store no
half-judged task; the key reaches the endpoint and nothing else."""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeling.models import ComparisonTask, Judge, Ranking
from labeling.services import do_set_judge
from training import endpoints
from training.core.judging import first_is_better, judge_chat, order_from_verdicts, questions
from training.core.loading import load_model
from training.executors import carry_out
from training.models import TrainingRun
from training.services import LaunchRefused, create_run

pytestmark = pytest.mark.django_db
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def sampled(tiny_project):
    """The tiny project (K=3) with 5 open tasks sampled from its base."""
    carry_out(create_run(tiny_project, "generate", prompts=5).pk)
    return tiny_project


def judge_run(project, tasks: int = 50) -> TrainingRun:
    return carry_out(create_run(project, TrainingRun.Kind.JUDGE, tasks=tasks).pk)


def test_a_judging_run_needs_a_judge_and_tasks_it_has_not_ranked(sampled):
    with pytest.raises(LaunchRefused, match="has no AI judge"):
        create_run(sampled, TrainingRun.Kind.JUDGE)
    do_set_judge(sampled, backend="local", model="bundled")
    assert judge_run(sampled).status == "succeeded"
    with pytest.raises(LaunchRefused, match="has ranked every task"):
        create_run(sampled, TrainingRun.Kind.JUDGE)


def test_a_local_judge_gives_whole_orders_tied_where_its_two_orders_disagree(sampled, tiny_folder):
    judge = do_set_judge(sampled, backend="local", model="bundled")  # the project's base: the tiny model
    run = judge_run(sampled)
    assert run.status == "succeeded", run.error
    assert run.metrics[-1]["tasks"] == 5 and run.hardware["device"] == "cpu"
    model, tokenizer = load_model(str(tiny_folder), tiny_folder.parent, trainable=False)
    for task in ComparisonTask.objects.filter(project=sampled):
        ranking = Ranking.objects.get(task=task, ai=True)
        assert ranking.labeler == judge.account
        assert ranking.judged_by == {"judge": "local:bundled", "prompt_version": judge.prompt_version, "run": run.pk}
        answers = task.display_completions()
        asked = questions(3)
        chats = [judge_chat(judge.instructions, task.prompt.chat, answers[q.first].text, answers[q.second].text)
                 for q in asked]  # fmt: skip
        verdicts = dict(zip(asked, (bool(p > 0.5) for p in first_is_better(model, tokenizer, chats)), strict=True))
        expected = [[answers[i].pk for i in group] for group in order_from_verdicts(3, verdicts)]
        assert ranking.order == [sorted(g, key=[a.pk for a in answers].index) for g in expected]
        assert sorted(cid for group in ranking.order for cid in group) == sorted(a.pk for a in answers)
    # people still rank every task: the judge took no one's place
    assert set(ComparisonTask.objects.filter(project=sampled).values_list("state", flat=True)) == {"open"}


# --- an OpenAI-compatible endpoint, served here ------------------------------------------------------


class Judged(BaseHTTPRequestHandler):
    """Prefers the longer answer; `behaviour` makes it fail, stall, or echo what it was sent."""

    requests: list[dict] = []
    behaviour: dict = {}

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Judged.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        n = len(Judged.requests)
        if n >= Judged.behaviour.get("stall_from", 10**9):
            time.sleep(2)
        if n >= Judged.behaviour.get("fail_from", 10**9):
            return self._answer(Judged.behaviour.get("status", 500), {"error": {"message": "overloaded"}})
        if Judged.behaviour.get("echo_key"):
            return self._answer(401, {"error": {"message": f"bad key {self.headers['Authorization']}"}})
        question = body["messages"][-1]["content"]
        first, second = re.search(r"Answer A:\n(.*)\n\nAnswer B:\n(.*)\n\nWhich", question, re.S).groups()
        letter = "A" if len(first) >= len(second) else "B"
        self._answer(200, {"choices": [{"message": {"role": "assistant", "content": letter}}]})

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint(monkeypatch):
    """A chat-completions server on a free local port; its base URL."""
    Judged.requests, Judged.behaviour = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judged)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(endpoints, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setenv("JUDGE_KEY", KEY)
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def endpoint_judge(project, base_url: str, **fields) -> Judge:
    return do_set_judge(project, backend="endpoint", model="judge-7b", base_url=base_url, api_key_env="JUDGE_KEY",
                        **fields)  # fmt: skip


def assert_key_nowhere(run: TrainingRun, client, admin_user) -> None:
    run.refresh_from_db()
    stored = json.dumps([run.error, run.log_tail, run.config, run.metrics, list(Judge.objects.values())], default=str)
    assert KEY not in stored
    client.force_login(admin_user)
    assert KEY not in client.get(reverse("training:run", args=[run.pk])).content.decode()


def test_an_endpoint_judge_is_asked_each_pair_both_ways_with_the_key_and_nothing_else_sees_it(
    sampled, endpoint, client, admin_user, caplog
):
    judge = endpoint_judge(sampled, endpoint)
    run = judge_run(sampled, tasks=2)
    assert run.status == "succeeded", run.error
    assert len(Judged.requests) == 2 * 6 and run.metrics[-1]["calls"] == 12
    client.force_login(admin_user)
    assert "2 tasks ranked by the AI judge" in client.get(reverse("training:run", args=[run.pk])).content.decode()
    first = Judged.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["headers"]["Authorization"] == f"Bearer {KEY}"
    assert first["body"]["model"] == "judge-7b" and first["body"]["temperature"] == 0
    system, user = first["body"]["messages"]
    assert system == {"role": "system", "content": judge.instructions}
    assert user["role"] == "user" and "Answer A:" in user["content"] and "Answer B:" in user["content"]
    for ranking in Ranking.objects.filter(ai=True):  # the longer answer first, as the server judges
        lengths = [[len(c.text) for c in ranking.task.completions.filter(pk__in=group)] for group in ranking.order]
        assert all(min(a) >= max(b) for a, b in zip(lengths, lengths[1:], strict=False))
    assert Ranking.objects.filter(ai=True).count() == 2
    assert_key_nowhere(run, client, admin_user)
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ({"fail_from": 1}, "failed 4 times; the last: HTTP 500 (overloaded)"),
        ({"fail_from": 1, "status": 400}, "refused the request: HTTP 400 (overloaded)"),
        ({"stall_from": 1}, "the last: no answer (timed out)"),
        ({"echo_key": True}, "HTTP 401 (bad key Bearer [the key])"),
    ],
)
def test_an_endpoint_that_fails_fails_the_run_with_the_reason_and_stores_nothing(
    sampled, endpoint, monkeypatch, client, admin_user, caplog, behaviour, reason
):
    monkeypatch.setattr(endpoints, "TIMEOUT_SECONDS", 0.3)
    Judged.behaviour = behaviour
    endpoint_judge(sampled, endpoint)
    run = judge_run(sampled)
    assert run.status == "failed" and reason in run.error
    assert not Ranking.objects.filter(ai=True).exists()
    assert_key_nowhere(run, client, admin_user)
    assert KEY not in caplog.text


def test_a_failure_midway_keeps_the_whole_tasks_judged_before_it_and_no_half_judged_one(sampled, endpoint):
    Judged.behaviour = {"fail_from": 4 * 6 + 3}  # the fifth task's third question; 4 tasks make a step
    endpoint_judge(sampled, endpoint)
    run = judge_run(sampled)
    assert run.status == "failed"
    judged = Ranking.objects.filter(ai=True)
    assert judged.count() == 4
    assert all(sum(len(group) for group in r.order) == 3 for r in judged)


def test_a_run_stops_when_its_budget_of_calls_is_spent(sampled, endpoint):
    endpoint_judge(sampled, endpoint, max_calls=5)
    run = judge_run(sampled)
    assert run.status == "failed" and "budget of 5 calls to the endpoint is spent" in run.error
    assert len(Judged.requests) == 5 and not Ranking.objects.filter(ai=True).exists()


def test_a_missing_key_variable_fails_the_run_before_any_call(sampled, endpoint, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY")
    endpoint_judge(sampled, endpoint)
    run = judge_run(sampled)
    assert run.status == "failed" and "no environment variable JUDGE_KEY" in run.error
    assert Judged.requests == []


def test_the_judge_command_runs_it_here_and_says_what_it_did(sampled, endpoint, capsys):
    endpoint_judge(sampled, endpoint)
    call_command("judge", project=str(sampled.pk), tasks=3, sync=True)
    assert "the judge ranked 3 tasks" in capsys.readouterr().out
