"""Blind human evaluation of policy versions, end to end: a sampling run makes K=2 eval tasks of
one completion from each version, simulated labelers rank them through the real services, and
the Bradley–Terry win rate appears in project_metrics and on the dashboard."""

import json
import re
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils.html import escape

from labeling.models import ComparisonTask, Ranking
from labeling.services import do_add_prompts, do_assign_next_task, do_hold_out_prompts
from labeling.statistics import MIN_PAIRS_TO_TELL, evidence_text, share_text, wilson_interval
from tests.labeling.test_api import client_for
from training.datasets import prompts_to_sample, training_rankings
from training.executors import carry_out
from training.models import EvalPair, PolicyVersion, TrainingRun
from training.reports.metrics import project_metrics
from training.services import LaunchRefused, create_run, do_promote_policy

pytestmark = pytest.mark.django_db

HELDOUT = [f"Held-out question {n}: name a colour?" for n in range(16)]


@pytest.fixture
def project(tiny_project, tiny_folder):
    """The tiny project with a second policy version (a copy of the base), active, and 16 held-out prompts (enough that
    a shuffled display order shows both versions first: 2 in 2^16 runs would not)."""
    base = PolicyVersion.objects.get(project=tiny_project, version=0)
    copy = PolicyVersion.objects.create(project=tiny_project, version=1, parent=base, checkpoint=str(tiny_folder))
    do_promote_policy(copy)
    do_add_prompts(tiny_project, HELDOUT, source="heldout.jsonl")
    do_hold_out_prompts(tiny_project.prompts.filter(text__in=HELDOUT), hold_out=True)
    tiny_project.overlap, tiny_project.eval_ratio = 2, 0.5
    tiny_project.save()
    return tiny_project


def words(text: str) -> int:
    return len(text.split())


def test_the_eval_flow_from_sampling_to_the_win_rate_on_the_dashboard(project, client, admin_user, labeler):
    run = carry_out(create_run(project, "blind_eval", prompts=20).pk)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    base, new = PolicyVersion.objects.get(version=0), PolicyVersion.objects.get(version=1)
    pairs = EvalPair.objects.select_related("task__prompt")
    tasks = [pair.task for pair in pairs]
    assert len(tasks) + run.metrics[-1]["identical"] == len(HELDOUT)  # only held-out prompts, each once
    assert len(tasks) >= 4 and {t.prompt.text for t in tasks} <= set(HELDOUT)
    assert all((p.version_a, p.version_b, p.run) == (base, new, run) for p in pairs)
    first_shown = set()
    for task in tasks:
        shown = task.display_completions()
        assert (task.kind, task.state, len(shown)) == ("eval", "open", 2)
        assert {c.policy_version_id for c in shown} == {base.pk, new.pk}
        first_shown.add(shown[0].policy_version_id)
    assert first_shown == {base.pk, new.pk}  # the display order is shuffled, not "new one first"

    # The ranking page does not tell which answer comes from which version.
    project.labelers.add(labeler)
    assignment = do_assign_next_task(project, labeler)
    client.force_login(labeler)
    body = client.get(reverse("labeling:task", args=[assignment.task_id])).content.decode()
    for completion in assignment.task.display_completions():
        body = body.replace(escape(completion.text), "")
    # what a labeler reads, and what a script could: the page's text, its data-* values and any
    # inline data (the tags and the htmx config are the same on every page)
    visible = re.sub(r"<meta[^>]*>", "", body, flags=re.I).lower()
    page_words = " ".join([*re.findall(r">([^<]+)<", visible), *re.findall(r'data-[\w-]+="([^"]*)"', visible)])
    assert "version" not in page_words and "policy" not in page_words and "eval" not in page_words
    client.logout()

    # Promoting another version does not retire the blind tasks.
    do_promote_policy(PolicyVersion.objects.create(project=project, version=2, parent=new, checkpoint="x"))
    assert not ComparisonTask.objects.filter(eval_pair__isnull=False).exclude(state="open").exists()

    call_command(
        "simulate_labelers", project=str(project.pk), preference="labeling.demo.preferences:shorter",
        rankings=100, labelers=3,
    )  # fmt: skip
    rankings = Ranking.objects.filter(task__in=tasks).exclude(labeler=labeler)
    assert rankings.count() + Ranking.objects.filter(labeler=labeler).count() >= 2 * len(tasks) - 1
    # Expected by hand from the texts: the simulated labelers put the answer with fewer words first,
    # and on equal counts the one shown first (a ranking never ties here).
    wins = 0
    for ranking in Ranking.objects.filter(task__in=tasks).select_related("task"):
        shown = ranking.task.display_completions()
        fewer = min(shown, key=lambda c: words(c.text))  # min keeps the first shown on equal counts
        assert ranking.order[0] == [fewer.pk] or ranking.labeler == labeler
        wins += ranking.order[0][0] in {c.pk for c in shown if c.policy_version_id == new.pk}
    n = Ranking.objects.filter(task__in=tasks).count()

    [figure] = project_metrics(project)["win_rates"]
    assert (figure["a"], figure["b"], figure["label"], figure["tasks"]) == (0, 1, "v1 vs v0", len(tasks))
    assert (figure["win_rate"]["pairs"], figure["wins"], figure["ties"]) == (n, wins, 0)
    low, high = wilson_interval(wins / n, n)
    assert figure["win_rate"]["low"] == pytest.approx(low) and figure["win_rate"]["high"] == pytest.approx(high)
    enough = n >= MIN_PAIRS_TO_TELL  # one ranking of an eval task is one comparison
    assert figure["win_rate"]["share"] == (pytest.approx(wins / n) if enough else None)
    assert not training_rankings(project).exists()  # eval rankings never train the reward model

    client.force_login(admin_user)
    page = client.get(reverse("training:dashboard", args=[project.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    share, evidence = share_text(figure["win_rate"], "comparisons"), evidence_text(figure["win_rate"], "comparisons")
    cell = f'{share}<span class="evidence">{evidence}</span>'
    assert "v1 vs v0" in text and cell in text
    [chart] = [c for c in page.context["charts"] if c["title"].startswith("Win rate of b over a")]
    assert chart["categories"] == ["v1 vs v0"]
    if enough:
        assert chart["series"]["human judges"] == [[0, figure["win_rate"]["share"]]]
        assert chart["intervals"]["human judges"] == [[0, figure["win_rate"]["low"], figure["win_rate"]["high"]]]
    else:
        assert chart["series"] == {}

    through_api = client_for(admin_user).get(f"/api/metrics/?project={project.pk}")
    assert through_api.status_code == 200
    assert through_api.json()["win_rates"] == [json.loads(json.dumps(figure))]


def test_a_blind_evaluation_is_refused_with_a_reason_and_stores_nothing(project):
    base = PolicyVersion.objects.get(project=project, version=0)
    with pytest.raises(LaunchRefused, match="Both sides are policy v0"):
        create_run(project, "blind_eval", prompts=5, a=base, b=base)
    with pytest.raises(LaunchRefused, match="1 to 500 prompts"):
        create_run(project, "blind_eval", prompts=0)
    project.prompts.update(heldout=False)
    with pytest.raises(LaunchRefused, match="no held-out prompts left"):
        create_run(project, "blind_eval", prompts=5)
    assert not TrainingRun.objects.exists()


def test_a_prompt_already_sampled_for_training_cannot_be_held_out(project):
    trained = ComparisonTask.objects.create(
        project=project, prompt=project.prompts.filter(heldout=False).first(),
        policy_version=PolicyVersion.objects.get(project=project, version=1),
    )  # fmt: skip
    with pytest.raises(ValidationError, match="already have training comparisons"):
        do_hold_out_prompts(project.prompts.filter(pk=trained.prompt_id), hold_out=True)
    assert not project.prompts.get(pk=trained.prompt_id).heldout


def test_held_out_prompts_are_never_sampled_for_training(project):

    policy = PolicyVersion.objects.get(project=project, version=1)
    assert not prompts_to_sample(project, policy).filter(heldout=True).exists()
    assert prompts_to_sample(project, policy).count() == 5


def test_the_command_holds_out_prompts_from_a_file_and_runs_the_evaluation(project, tmp_path, capsys):
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Another held-out one {n}?"}) + "\n" for n in range(3)))
    call_command("blind_evaluation", project=project.name, prompts=2, hold_out=path, sync=True)
    out = capsys.readouterr().out
    assert "3 prompts held out for evaluation (3 new)" in out
    assert "blind comparison tasks of v1 vs v0" in out
    with pytest.raises(CommandError, match="no policy version 7"):
        call_command("blind_evaluation", project=project.name, a=7)


def test_the_admin_starts_a_blind_evaluation_of_two_selected_versions(
    client, admin_user, project, django_capture_on_commit_callbacks
):
    versions = PolicyVersion.objects.filter(project=project).order_by("version")
    client.force_login(admin_user)
    url = reverse("admin:training_policyversion_changelist")
    response = client.post(url, {"action": "blind_evaluation", "_selected_action": [versions[0].pk]}, follow=True)
    assert "Select exactly two policy versions" in response.content.decode()
    with (
        mock.patch("webapp.celery.app.send_task") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            url, {"action": "blind_evaluation", "_selected_action": [v.pk for v in versions]}, follow=True
        )
    run = TrainingRun.objects.get(kind="blind_eval")
    send.assert_called_once_with("training.execute_run", args=[run.pk], queue="generation")
    assert (run.baseline.version, run.policy.version, run.launched_by) == (0, 1, admin_user)
    assert run.get_absolute_url() in response.content.decode()
