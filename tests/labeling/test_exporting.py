import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.exporting import export_rows, jsonl_blocks
from labeling.models import ComparisonTask, Completion, Ranking, TaskCompletion
from labeling.services import do_exclude_rankings, do_submit_ranking
from tests.factories import (
    AssignmentFactory,
    CompletionFactory,
    PolicyVersionFactory,
    ProjectFactory,
    PromptFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def ranked_task(project, prompt: str, texts: list[str], order: str, labeler, **extra) -> Ranking:
    """A task showing `texts` as A, B, C, ... and `labeler`'s ranking of it, like "A BC D" (spaces split
    ranks, letters together are tied), submitted through the service a labeler's browser uses."""
    policy = project.policies.get(version=1)
    prompt_row = PromptFactory(project=project, text=prompt)
    task = ComparisonTask.objects.create(project=project, prompt=prompt_row, policy_version=policy)
    completions = Completion.objects.bulk_create(
        CompletionFactory.build(prompt=prompt_row, policy_version=policy, text=text, token_count=len(text.split()),
                                finish_reason="length" if text.endswith("...") else "eos")
        for text in texts
    )  # fmt: skip
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
    )
    AssignmentFactory(task=task, labeler=labeler)
    ids = {"ABCDEFGHI"[i]: c.pk for i, c in enumerate(completions)}
    groups = [[ids[letter] for letter in group] for group in order.split()]
    ranking, _ = do_submit_ranking(task.pk, labeler, groups, **extra)
    return ranking


@pytest.fixture
def project(labeler, other_labeler):
    """Two hand-made rankings with a tie, and one excluded ranking."""
    project = ProjectFactory(name="Export me", k=4)
    PolicyVersionFactory(project=project, version=1)
    ranked_task(project, "Capital of France?", ["Paris.", "Lyon.", "Nice.", "It is Paris, I think..."], "A BC D",
                labeler, likert={}, rationale="A is right.", flags=[], time_spent_ms=4200)  # fmt: skip
    ranked_task(project, "2+2?", ["4", "5"], "B A", other_labeler)
    excluded = ranked_task(project, "Say hi", ["hi", "bye"], "A B", labeler)
    do_exclude_rankings(Ranking.objects.filter(pk=excluded.pk), exclude=True)
    return project


def pair(prompt: str, chosen: str, rejected: str) -> str:
    return json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}, ensure_ascii=False)


def export_text(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_preferences", *args, stdout=out, stderr=err)
    return out.getvalue()


FRANCE = "Capital of France?"
PAIRS_WITHOUT_TIES = [
    pair(FRANCE, "Paris.", "Lyon."),
    pair(FRANCE, "Paris.", "Nice."),
    pair(FRANCE, "Paris.", "It is Paris, I think..."),
    pair(FRANCE, "Lyon.", "It is Paris, I think..."),
    pair(FRANCE, "Nice.", "It is Paris, I think..."),
]


def test_pairs_drop_ties_by_default(project):
    lines = export_text("--project", "Export me", "--format", "pairs").splitlines()
    assert lines == [*PAIRS_WITHOUT_TIES, pair("2+2?", "5", "4")]


def test_pairs_with_ties_half_write_a_tied_pair_once_each_way(project):
    lines = export_text("--project", "Export me", "--format", "pairs", "--ties", "half").splitlines()
    tied = [pair(FRANCE, "Lyon.", "Nice."), pair(FRANCE, "Nice.", "Lyon.")]
    assert lines == [*PAIRS_WITHOUT_TIES, *tied, pair("2+2?", "5", "4")]


def test_a_k_way_ranking_without_ties_gives_k_choose_2_pairs(labeler):
    project = ProjectFactory(k=5)
    PolicyVersionFactory(project=project, version=1)
    ranked_task(project, "Order these", ["one", "two", "three", "four", "five"], "C A E B D", labeler)
    rows = list(export_rows(project, "pairs"))
    assert len(rows) == 10
    assert rows[0] == {"prompt": "Order these", "chosen": "three", "rejected": "one"}


def test_excluded_rankings_are_left_out_unless_asked_for(project):
    assert len(list(export_rows(project, "rankings"))) == 2
    included = export_text("--project", "Export me", "--format", "rankings", "--include-excluded").splitlines()
    assert [json.loads(line)["excluded"] for line in included] == [False, False, True]
    pairs = export_text("--project", "Export me", "--format", "pairs", "--include-excluded").splitlines()
    assert pairs[-1] == pair("Say hi", "hi", "bye")


def test_rankings_carry_every_field_and_the_completions_provenance(project):
    first = Ranking.objects.order_by("id").first()
    task = first.task
    completions = task.display_completions()
    line = export_text("--project", "Export me", "--format", "rankings").splitlines()[0]
    assert json.loads(line) == {
        "ranking_id": first.pk,
        "task_id": task.pk,
        "task_kind": "train",
        "prompt_id": task.prompt_id,
        "prompt": "Capital of France?",
        "prompt_messages": [{"role": "user", "content": "Capital of France?"}],
        "completions": [
            {
                "id": completions[0].pk,
                "label": "A",
                "text": "Paris.",
                "finish_reason": "eos",
                "token_count": 1,
                "policy_version": 1,
            },
            {
                "id": completions[1].pk,
                "label": "B",
                "text": "Lyon.",
                "finish_reason": "eos",
                "token_count": 1,
                "policy_version": 1,
            },
            {
                "id": completions[2].pk,
                "label": "C",
                "text": "Nice.",
                "finish_reason": "eos",
                "token_count": 1,
                "policy_version": 1,
            },
            {
                "id": completions[3].pk,
                "label": "D",
                "text": "It is Paris, I think...",
                "finish_reason": "length",
                "token_count": 5,
                "policy_version": 1,
            },
        ],  # fmt: skip
        "order": [[completions[0].pk], [completions[1].pk, completions[2].pk], [completions[3].pk]],
        "likert": {},
        "rationale": "A is right.",
        "flags": [],
        "time_spent_ms": 4200,
        "labeler": "labeler",
        "created_at": first.created_at.isoformat(),
        "excluded": False,
        "ai": False,  # a person's: no judge made it, and nothing was pre-filled
        "judged_by": {},
        "suggestion": {},
    }


def test_the_export_makes_the_same_queries_for_two_rankings_or_twenty(labeler):
    project = ProjectFactory(k=2)
    PolicyVersionFactory(project=project, version=1)

    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as queries:
            list(jsonl_blocks(export_rows(project, "rankings")))
        return len(queries.captured_queries)

    for n in range(2):
        ranked_task(project, f"Prompt {n}", ["x", "y"], "A B", labeler)
    few = queries_for_export()
    for n in range(2, 20):
        ranked_task(project, f"Prompt {n}", ["x", "y"], "B A", UserFactory())
    assert queries_for_export() == few


def test_the_command_writes_a_file_only_once_complete(project, tmp_path):
    target = tmp_path / "pairs.jsonl"
    err = io.StringIO()
    call_command("export_preferences", "--project", "Export me", "--format", "pairs", "--output", str(target),
                 stderr=err)  # fmt: skip
    assert len(target.read_text().splitlines()) == 6
    assert f"Wrote 6 pairs to {target}" in err.getvalue()
    assert list(tmp_path.iterdir()) == [target]


def test_the_command_refuses_ties_for_rankings(project):
    with pytest.raises(CommandError, match="--ties applies to --format pairs and conversational only"):
        call_command("export_preferences", "--project", "Export me", "--format", "rankings", "--ties", "half")


def test_exporting_does_not_import_torch():
    code = (
        "import sys, django; django.setup(); "
        "from django.core.management import load_command_class; "
        "load_command_class('labeling', 'export_preferences'); import labeling.admin; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"},
    ).stdout  # fmt: skip
    assert found.strip() == "[]"


def download_url(project, **query) -> str:
    return reverse("admin:labeling_project_download", args=[project.pk]) + "?" + urlencode(query)


def test_staff_reach_the_export_from_the_project_page(client, admin_user, project):
    client.force_login(admin_user)
    page = client.get(reverse("admin:labeling_project_change", args=[project.pk])).content.decode()
    assert reverse("admin:labeling_project_export", args=[project.pk]) in page
    form = client.get(reverse("admin:labeling_project_export", args=[project.pk]))
    assert form.status_code == 200
    assert f'action="{reverse("admin:labeling_project_download", args=[project.pk])}"' in form.content.decode()


def test_staff_download_a_streamed_export(client, admin_user, project):
    client.force_login(admin_user)
    response = client.get(download_url(project, format="pairs", ties="half"))
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="export-me-pairs.jsonl"'
    body = b"".join(response.streaming_content).decode()
    assert body == export_text("--project", "Export me", "--format", "pairs", "--ties", "half")
    assert len(body.splitlines()) == 8


def test_the_download_of_rankings_leaves_excluded_ones_out_unless_asked(client, admin_user, project):
    client.force_login(admin_user)
    plain = b"".join(client.get(download_url(project, format="rankings")).streaming_content)
    everything = client.get(download_url(project, format="rankings", include_excluded="on"))
    assert len(plain.splitlines()) == 2
    assert len(b"".join(everything.streaming_content).splitlines()) == 3


def test_the_download_refuses_an_unknown_format(client, admin_user, project):
    client.force_login(admin_user)
    assert client.get(download_url(project, format="csv")).status_code == 400


def test_the_download_is_refused_to_a_labeler(client, labeler, project):
    client.force_login(labeler)
    response = client.get(download_url(project, format="pairs"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not isinstance(response, StreamingHttpResponse)


def test_the_download_is_refused_to_staff_who_may_not_view_projects(client, project):
    client.force_login(UserFactory(username="no-perms", is_staff=True))
    assert client.get(download_url(project, format="pairs")).status_code == 403
