"""The AI judge as a labeler, on rows (no model runs here): its settings, its rankings beside people's,
the weight it earns, the marks that follow its rankings, and the suggestions labelers see."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.exporting import export_rows
from labeling.models import ComparisonTask, Judge, Project, Ranking
from labeling.quality import labeler_quality, labeler_weights
from labeling.services import do_set_judge, do_store_ai_ranking, do_submit_ranking
from labeling.statistics import PairCounts, earned_weight
from tests.factories import AssignmentFactory, ComparisonTaskFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory(name="Judged", k=3, overlap=1)


@pytest.fixture
def judge(project):
    return do_set_judge(project, backend="local", model="bundled")


def best_first(task: ComparisonTask, letters: str) -> list[list[int]]:
    """'BAC' -> the task's completion ids in that order, no ties; 'A=B C' style ties with '='."""
    ids = {chr(65 + i): c.pk for i, c in enumerate(task.display_completions())}
    return [[ids[x] for x in group.split("=")] for group in letters.split()]


def human_ranks(task: ComparisonTask, user, letters: str, **extra) -> Ranking:
    AssignmentFactory(task=task, labeler=user)
    return do_submit_ranking(task.pk, user, best_first(task, letters), **extra)[0]


def ai_ranks(task: ComparisonTask, judge: Judge, letters: str) -> Ranking:
    return do_store_ai_ranking(task.pk, judge, best_first(task, letters), {"judge": judge.identity, "run": 1})


# --- settings --------------------------------------------------------------------------------------


def test_a_judge_ranks_through_an_ai_account_that_cannot_log_in(judge):
    assert judge.account.username == f"ai-judge-{judge.project_id}"
    assert not judge.account.has_usable_password()
    assert judge.identity == "local:bundled" and len(judge.prompt_version) == 12


def test_the_prompt_version_follows_the_instructions_and_the_guidelines(project, judge):
    before = judge.prompt_version
    project.guidelines = "Prefer plain words."
    project.save()
    judge.refresh_from_db()
    assert judge.prompt_version != before and judge.instructions.endswith("Guidelines:\nPrefer plain words.")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "endpoint", "model": "m", "base_url": ""}, "needs its base URL"),
        ({"backend": "endpoint", "model": "m", "base_url": "http://h/v1", "api_key_env": "sk-abc123"}, "never the key"),
        ({"weight_cap": 1.5}, "between 0 and 1"),
        ({"colour": "red"}, "no setting 'colour'"),
    ],
)
def test_a_bad_judge_setting_is_refused_in_words_and_nothing_is_stored(project, fields, message):
    with pytest.raises(ValidationError, match=message):
        do_set_judge(project, **fields)
    assert not Judge.objects.filter(project=project).exists()


def test_set_judge_command_stores_an_endpoint_by_the_name_of_its_key(project, capsys):
    call_command("set_judge", project=str(project.pk), endpoint="http://127.0.0.1:9/v1", model="qwen", key_env="MY_KEY")
    judge = Judge.objects.get(project=project)
    assert (judge.backend, judge.base_url, judge.api_key_env) == ("endpoint", "http://127.0.0.1:9/v1", "MY_KEY")
    assert "endpoint:qwen@127.0.0.1:9" in capsys.readouterr().out
    with pytest.raises(CommandError, match="needs --model"):
        call_command("set_judge", project=str(project.pk), endpoint="http://127.0.0.1:9/v1")


# --- rankings beside people's ----------------------------------------------------------------------


def test_an_ai_ranking_is_marked_and_does_not_take_a_persons_place(project, judge, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    ranking = ai_ranks(task, judge, "B A C")
    assert ranking.ai and ranking.judged_by["judge"] == "local:bundled"
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.OPEN  # overlap 1 still needs a person
    human_ranks(task, labeler, "A B C")
    task.refresh_from_db()
    assert task.state == ComparisonTask.State.COMPLETE


def test_an_ai_ranking_is_stored_once_and_checked_like_a_persons(project, judge):
    task = ComparisonTaskFactory(prompt__project=project)
    first = ai_ranks(task, judge, "B A C")
    again = ai_ranks(task, judge, "C B A")
    assert again.pk == first.pk and again.order == first.order
    other = ComparisonTaskFactory(prompt__project=project)
    with pytest.raises(ValidationError, match="Not every completion is ranked"):
        do_store_ai_ranking(other.pk, judge, best_first(other, "A B"), {})
    assert not other.rankings.exists()


def test_the_judge_is_measured_against_people_and_people_among_people(project, judge):
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    for _ in range(3):
        task = ComparisonTaskFactory(prompt__project=project)
        human_ranks(task, ann, "A B C")
        AssignmentFactory(task=task, labeler=bob)
        task.target_overlap = 2
        task.save()
        do_submit_ranking(task.pk, bob, best_first(task, "A C B"))
        ai_ranks(task, judge, "C B A")
    overall, quality = labeler_quality(project)
    # people: ann and bob agree on 2 of 3 pairs a task
    assert (overall.pairs.agreed, overall.pairs.compared) == (6, 9)
    assert quality["ann"].agreement.pairs == PairCounts(6, 9) and not quality["ann"].ai
    # the judge (C > B > A) against each person: ann (A > B > C) 0 of 3 pairs a task, bob (A > C > B) 1 of 3
    judge_row = quality[judge.account.username]
    assert judge_row.ai
    assert judge_row.agreement.pairs == PairCounts(0 * 3 + 1 * 3, 18)


def test_rankings_made_from_a_prefilled_page_stay_out_of_agreement(project, judge):
    project.suggestions = Project.Suggestions.PREFILLED
    project.save()
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    task = ComparisonTaskFactory(prompt__project=project, target_overlap=2)
    ai_ranks(task, judge, "A B C")
    human_ranks(task, ann, "A B C", prefilled=True)
    human_ranks(task, bob, "A B C")
    ranking = Ranking.objects.get(labeler=ann)
    assert ranking.suggestion == {"shown": "prefilled", "order": best_first(task, "A B C"), "changed": False}
    overall, quality = labeler_quality(project)
    assert overall.pairs.compared == 0  # ann's anchored ranking is not a second opinion
    assert quality[judge.account.username].agreement.pairs == PairCounts(3, 3)  # bob's only


def test_the_judge_earns_its_weight_from_zero_and_never_above_the_cap():
    people = {"ann": PairCounts(90, 100), "bob": PairCounts(70, 100)}  # ann: 2·0.9 − 1 = 0.8, the best figure
    # as good as the best person, over 60 pairs: 60·1 / (60 + 20) = 0.75, capped at 0.5
    assert earned_weight(PairCounts(54, 60), people, cap=0.5) == 0.5
    assert earned_weight(PairCounts(54, 60), people, cap=1.0) == pytest.approx(0.75)
    # figure 2·0.7 − 1 = 0.4, half the best; 20 pairs: 20·0.5 / 40 = 0.25
    assert earned_weight(PairCounts(14, 20), people, cap=1.0) == pytest.approx(0.25)
    assert earned_weight(PairCounts(10, 20), people, cap=1.0) == 0.0  # at chance
    assert earned_weight(PairCounts(0, 0), people, cap=1.0) == 0.0  # no evidence, no weight


def test_the_reward_models_weights_list_the_judge_even_when_people_are_not_weighed(project, judge, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    human_ranks(task, labeler, "A B C")
    ai_ranks(task, judge, "A B C")
    assert labeler_weights(project, people=False) == {judge.account.username: pytest.approx(3 / 23)}
    judge.weight_cap = 0.1
    judge.save()
    assert labeler_weights(project, people=False)[judge.account.username] == pytest.approx(0.1)
    assert labeler_weights(project).get("labeler", 1.0) == 1.0  # a person unmeasured weighs 1


# --- marks in the exports, the API and the admin ---------------------------------------------------


@pytest.fixture
def judged_task(project, judge, labeler):
    task = ComparisonTaskFactory(prompt__project=project)
    human_ranks(task, labeler, "A B C")
    ai_ranks(task, judge, "C B A")
    return task


def test_exports_mark_ai_rankings_and_can_leave_them_out(project, judged_task, judge):
    rows = list(export_rows(project, "rankings"))
    assert [(r["labeler"], r["ai"]) for r in rows] == [("labeler", False), (judge.account.username, True)]
    assert rows[1]["judged_by"]["judge"] == "local:bundled"
    assert len(list(export_rows(project, "pairs"))) == 6  # TRL's columns only
    assert len(list(export_rows(project, "pairs", include_ai=False))) == 3
    assert [r["ai"] for r in export_rows(project, "rankings", include_ai=False)] == [False]


def test_export_command_leaves_ai_rankings_out_with_no_ai(project, judged_task, capsys):
    call_command("export_preferences", project=str(project.pk), format="rankings", no_ai=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["ai"] for line in lines] == [False]


def test_the_api_marks_ai_rankings_and_filters_them(client, admin_user, project, judged_task, judge):
    client.force_login(admin_user)
    listed = client.get(reverse("api:ranking-list"), {"project": project.pk}).json()["results"]
    assert sorted((r["ai"], r["judged_by"].get("judge", "")) for r in listed) == [(False, ""), (True, "local:bundled")]
    only_ai = client.get(reverse("api:ranking-list"), {"project": project.pk, "ai": "true"}).json()["results"]
    assert [r["ai"] for r in only_ai] == [True]
    export = client.get(reverse("api:project-export", args=[project.pk]), {"kind": "rankings", "include_ai": "false"})
    assert [json.loads(line)["ai"] for line in b"".join(export.streaming_content).decode().splitlines()] == [False]


def test_the_admin_shows_which_rankings_an_ai_made(client, admin_user, judged_task, judge):
    client.force_login(admin_user)
    page = client.get(reverse("admin:labeling_ranking_changelist"), {"ai__exact": "1"}).content.decode()
    assert judge.account.username in page and ">labeler<" not in page


def test_the_api_sets_and_shows_the_judge_without_ever_holding_a_key(client, admin_user, project, labeler):
    url = reverse("api:project-judge", args=[project.pk])
    client.force_login(labeler)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 404
    body = {"backend": "endpoint", "model": "qwen", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "JUDGE_KEY"}
    answer = client.put(url, body, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["identity"] == "endpoint:qwen@127.0.0.1:9"
    assert answer.json()["account"] == f"ai-judge-{project.pk}"
    refused = client.put(url, {**body, "api_key_env": "sk-live-123"}, content_type="application/json")
    assert refused.status_code == 400 and "never the key" in refused.content.decode()
    assert Judge.objects.get(project=project).api_key_env == "JUDGE_KEY"


# --- suggestions on the ranking page ---------------------------------------------------------------


@pytest.fixture
def leased(project, judge, labeler, client):
    project.labelers.add(labeler)
    task = ComparisonTaskFactory(prompt__project=project)
    ai_ranks(task, judge, "B C A")
    AssignmentFactory(task=task, labeler=labeler)
    client.force_login(labeler)
    return task


def test_after_submit_the_labeler_sees_the_judges_order_only_once_theirs_is_sent(client, leased):
    page = client.get(reverse("labeling:task", args=[leased.pk])).content.decode()
    assert "AI judge" not in page and 'name="prefilled"' not in page
    ids = [c.pk for c in leased.display_completions()]
    form = {f"rank-{cid}": str(rank) for cid, rank in zip(ids, [1, 2, 3], strict=True)}
    after = client.post(reverse("labeling:submit", args=[leased.pk]), form, follow=True).content.decode()
    assert "The AI judge ranked it B &gt; C &gt; A: you agree on 1 of the 3 pairs you both ordered." in after
    read_only = client.get(reverse("labeling:task", args=[leased.pk])).content.decode()
    assert "The AI judge ranked it B &gt; C &gt; A" in read_only


def test_with_suggestions_off_the_judge_is_never_shown(client, project, leased):
    project.suggestions = Project.Suggestions.OFF
    project.save()
    ids = [c.pk for c in leased.display_completions()]
    form = {f"rank-{cid}": str(rank) for cid, rank in zip(ids, [1, 2, 3], strict=True)}
    after = client.post(reverse("labeling:submit", args=[leased.pk]), form, follow=True).content.decode()
    assert "is saved" in after and "AI judge" not in after


def test_a_prefilled_page_starts_in_the_judges_order_and_records_a_change(client, project, leased):
    project.suggestions = Project.Suggestions.PREFILLED
    project.save()
    page = client.get(reverse("labeling:task", args=[leased.pk])).content.decode()
    assert 'name="prefilled" value="1"' in page and "starts in the AI judge's order" in page
    a, b, c = (x.pk for x in leased.display_completions())
    for cid, rank in ((b, 1), (c, 2), (a, 3)):
        assert f'<option value="{rank}" selected>' in page.split(f'name="rank-{cid}"')[1].split("</select>")[0]
    client.post(reverse("labeling:submit", args=[leased.pk]), {f"rank-{a}": "1", f"rank-{b}": "2", f"rank-{c}": "3",
                                                               "prefilled": "1"})  # fmt: skip
    ranking = Ranking.objects.get(task=leased, ai=False)
    assert ranking.suggestion["changed"] is True and ranking.suggestion["order"] == [[b], [c], [a]]
