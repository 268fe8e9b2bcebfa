"""The project's metrics: project_metrics, the staff dashboard over HTTP, the admin's flags, the
labeler's own agreement on their home page, and `manage.py project_report`."""

import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeling.models import Ranking
from labeling.quality import labeler_weights
from labeling.services import do_set_gold_order
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory
from training.datasets import ranked_prompts
from training.models import RewardModelVersion, TrainingRun
from training.reports.charts import dashboard_charts
from training.reports.metrics import project_metrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    """4 tasks (K=3) ranked by ann, bob and cat best-to-worst in display order, and by rev reversed;
    one gold task (a > b > c) that ann ranks right and rev reversed."""
    project = ProjectFactory(name="Quality", k=3, overlap=4, agreement_threshold=0.6)
    names = ["ann", "bob", "cat", "rev"]
    users = {name: UserFactory(username=name) for name in names}
    project.labelers.add(*users.values())
    for task in ComparisonTaskFactory.create_batch(4, prompt__project=project, target_overlap=4):
        a, b, c = (item.completion_id for item in task.items.order_by("position"))
        for name in names:
            order = [[c], [b], [a]] if name == "rev" else [[a], [b], [c]]
            Ranking.objects.create(task=task, labeler=users[name], order=order)
    gold = ComparisonTaskFactory(prompt__project=project)
    a, b, c = (item.completion_id for item in gold.items.order_by("position"))
    do_set_gold_order(gold, [[a], [b], [c]])
    Ranking.objects.create(task=gold, labeler=users["ann"], order=[[a], [b], [c]])
    Ranking.objects.create(task=gold, labeler=users["rev"], order=[[c], [b], [a]])
    return project


def test_a_labeler_who_always_reverses_the_others_is_flagged(project):
    figures = project_metrics(project)
    rows = {row["labeler"]: row for row in figures["labelers"]}
    # Per task, each of ann/bob/cat agrees with the other two on all 3 pairs and with rev on none.
    # ann: 2 partners × 3 pairs agreed, of 3 partners × 3 pairs, over 4 tasks: 24 / 36 = 2/3.
    assert rows["ann"]["agreement"]["share"] == pytest.approx(2 / 3) and rows["ann"]["agreement"]["pairs"] == 36
    assert rows["ann"]["tau_b"] == pytest.approx((1 + 1 - 1) / 3)
    assert rows["rev"]["agreement"]["share"] == 0.0 and rows["rev"]["tau_b"] == -1.0
    assert [name for name, row in rows.items() if row["flagged"]] == ["rev"]
    assert rows["rev"]["flags"] == ["agreement with others 0% is below 60%"]
    # Gold (3 strict pairs): ann 3/3, rev 0/3: too few pairs (3 < 20) to give, or to flag on.
    assert [rows[name]["gold_accuracy"]["share"] for name in ("ann", "rev")] == [None, None]
    assert [rows[name]["gold_accuracy"]["pairs"] for name in ("ann", "rev")] == [3, 3]
    # Wilson for 0 of 3: centre = (3.8416/6) / (1 + 3.8416/3) = 0.640267 / 2.280533 = 0.280753 = half: [0, 0.561506]
    assert rows["rev"]["gold_accuracy"]["low"] == 0.0
    assert rows["rev"]["gold_accuracy"]["high"] == pytest.approx(0.561506, abs=1e-6)
    # Overall: 6 pairs of labelers per task × 3 pairs × 4 tasks = 72 pairs, 3 of the 6 labeler pairs agree.
    assert figures["agreement"]["pairwise"]["share"] == 0.5 and figures["agreement"]["pairwise"]["pairs"] == 72
    assert figures["rankings"]["total"] == 18 and figures["rankings"]["per_labeler"]["rev"] == 5
    json.dumps(figures)  # plain values only: the API returns this dict as it is


def test_each_labelers_weight_in_the_reward_model_comes_from_agreement_and_gold_pooled(project):
    rows = {row["labeler"]: row for row in project_metrics(project)["labelers"]}
    # ann: 24 of 36 agreement pairs and 3 of 3 gold pairs: 27/39, figure 2·27/39 − 1, the team's best.
    # bob: 24 of 36, figure 1/3, relative to ann's, shrunk toward 1 with 20 pairs.
    assert rows["ann"]["weight"] == pytest.approx(1.0)
    assert rows["bob"]["weight"] == pytest.approx((36 * (1 / 3) / (2 * 27 / 39 - 1) + 20) / 56)
    assert rows["rev"]["weight"] == pytest.approx(20 / 59)  # below chance: only the prior keeps it above 0
    weights = labeler_weights(project)
    assert weights["bob"] == pytest.approx(rows["bob"]["weight"]) and weights["rev"] < weights["bob"]
    through = Ranking.objects.filter(task__project=project).latest("id").pk
    by_labeler = {item.labeler: item.weight for _, item in ranked_prompts(project, through, weights)}
    assert by_labeler["rev"] == pytest.approx(20 / 59) and by_labeler["bob"] == pytest.approx(weights["bob"])
    assert {item.weight for _, item in ranked_prompts(project, through)} == {1.0}


def test_the_metrics_take_a_fixed_number_of_queries(project, django_assert_max_num_queries):
    with django_assert_max_num_queries(16):  # 12, the learning curve's one, the AI judge's 3 (2 without AI rankings)
        project_metrics(project)


def test_staff_see_the_dashboard_with_titled_charts_and_the_flag(client, admin_user, project):
    client.force_login(admin_user)
    response = client.get(reverse("training:dashboard", args=[project.pk]))
    assert response.status_code == 200
    charts = response.context["charts"]
    assert len(charts) == 9  # the learning curve the ninth
    for chart in charts:
        assert chart["title"] and chart["unit"] and chart["x_label"]
    body = response.content.decode()
    assert "⚑ agreement with others 0% is below 60%" in body
    assert "<td>0.34</td>" in body  # rev's weight in the reward model's loss, beside the flag
    assert 'src="/static/vendor/uPlot-1.6.32.iife.min.js"' in body
    # every script and style is served from the site (a random token in the page may spell "cdn")
    assert all(url.startswith("/static/") for url in re.findall(r'(?:src|href)="([^"#?]+\.(?:js|css))"', body))


def test_labelers_and_strangers_do_not_reach_the_dashboard(client, project):
    url = reverse("training:dashboard", args=[project.pk])
    assert client.get(url).status_code == 302
    client.force_login(UserFactory(username="ann"))
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_empty_project_shows_the_dashboard_with_empty_charts(client, admin_user):
    empty = ProjectFactory(name="Empty")
    client.force_login(admin_user)
    response = client.get(reverse("training:dashboard", args=[empty.pk]))
    assert response.status_code == 200
    assert response.content.decode().count("No data yet.") == 9  # the learning curve the ninth chart


def test_the_admin_project_page_shows_the_flag_and_links_the_dashboard(client, admin_user, project):
    client.force_login(admin_user)
    body = client.get(reverse("admin:labeling_project_change", args=[project.pk])).content.decode()
    assert "<strong>rev</strong>: agreement with others 0% is below 60%" in body
    assert reverse("training:dashboard", args=[project.pk]) in body
    listing = client.get(reverse("admin:labeling_project_changelist")).content.decode()
    assert reverse("training:dashboard", args=[project.pk]) in listing


def test_the_run_page_links_the_dashboard(client, admin_user, project):
    run = TrainingRun.objects.create(project=project, kind="ppo")
    client.force_login(admin_user)
    body = client.get(run.get_absolute_url()).content.decode()
    assert reverse("training:dashboard", args=[project.pk]) in body


def test_a_labeler_sees_their_agreement_once_they_share_tasks(client, project):
    loner = UserFactory(username="loner")
    project.labelers.add(loner)
    client.force_login(loner)
    assert "Agreement with others" not in client.get(reverse("labeling:home")).content.decode()
    client.force_login(UserFactory(username="ann"))
    response = client.get(reverse("labeling:home"))
    [shown] = response.context["projects"]
    assert shown.agreement["share"] == pytest.approx(2 / 3) and shown.agreement["pairs"] == 36
    body = response.content.decode()
    assert "Agreement with others" in body and "67%" in body and "95% CI 50–80%, 36 pairs" in body
    assert "On the 36 pairs" in body


def test_ppo_runs_are_laid_end_to_end_and_labelled_by_policy_version(project):
    from training.models import PolicyVersion

    base = PolicyVersion.objects.create(project=project, version=0, checkpoint="x", status="active")
    for n, scores in enumerate([[0.1, 0.4], [0.5, 0.9, 1.2]], start=1):
        metrics = [{"step": s, "score": v, "kl": 0.1 * s} for s, v in enumerate(scores, start=1)]
        run = TrainingRun.objects.create(project=project, kind="ppo", status="succeeded", metrics=metrics, policy=base)
        base = PolicyVersion.objects.create(project=project, version=n, checkpoint="x", created_by_run=run)
    curves = project_metrics(project)["ppo_runs"]
    assert [c["label"] for c in curves] == ["v0 → v1", "v1 → v2"]
    assert [s["global_step"] for c in curves for s in c["steps"]] == [1, 2, 3, 4, 5]


def test_the_report_prints_readable_tables_and_the_same_dict_as_json(project, capsys):
    RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", heldout_accuracy=0.7, accuracy=0.8, tie_rate=0.0,
        trained_through_ranking_id=0, trained_through_time="2025-01-01T00:00Z", rankings_count=12,
    )  # fmt: skip
    call_command("project_report", project=project.name)
    out = capsys.readouterr().out
    assert "Labeler agreement: 50% (95% CI 39–61%, 72 pairs)" in out
    rev = (
        r"^ +rev +5 +0% \(95% CI 0–10%, 36 pairs\) +-1\.000 +too few pairs to tell \(3 pairs\) +1 +– +0\.34"
        r" +agreement with others 0% is below 60%$"
    )
    assert re.search(rev, out, re.M)  # 0.34: its weight in the reward model
    # 70% held-out on a count not recorded; 16 non-gold rankings await scoring
    assert re.search(r"^ +v1 +12 +70% \(number of pairs not recorded\) +– +0 +16$", out, re.M)
    call_command("project_report", project=str(project.pk), json=True)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(project_metrics(project)))


def test_the_latest_reward_models_calibration_is_charted_against_the_diagonal(project):
    bins = [{"bin": [0.6, 0.8], "predicted": 0.7, "observed": 0.65, "pairs": 40}]
    RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", heldout_accuracy=0.7, trained_through_ranking_id=0,
        trained_through_time="2025-01-01T00:00Z", rankings_count=12,
        metrics={"heldout": {"pairs": 40, "spread": 0.2, "calibration": bins}},
    )  # fmt: skip
    [chart] = [c for c in dashboard_charts(project_metrics(project)) if c["title"].startswith("Reward-model calib")]
    assert chart["series"] == {"RM v1 (40 pairs)": [[0.7, 0.65]], "calibrated": [[0.0, 0.0], [0.7, 0.7], [1.0, 1.0]]}


def reward_models_on_12_and_40_heldout_pairs(project) -> None:
    """RM v1: 9 of 12 held-out pairs right (too few to tell); v2: 25 of 40 (62.5%)."""
    for version, accuracy, pairs in [(1, 0.75, 12), (2, 0.625, 40)]:
        RewardModelVersion.objects.create(
            project=project, version=version, checkpoint="x", heldout_accuracy=accuracy, accuracy=0.9,
            trained_through_ranking_id=0, trained_through_time="2025-01-01T00:00Z", rankings_count=12,
            metrics={"heldout": {"pairs": pairs}, "train": {"pairs": 30}},
        )  # fmt: skip


def test_the_dashboard_gives_each_share_with_its_interval_and_too_few_pairs_to_tell(client, admin_user, project):
    reward_models_on_12_and_40_heldout_pairs(project)
    client.force_login(admin_user)
    response = client.get(reverse("training:dashboard", args=[project.pk]))
    body = response.content.decode()
    # v2, 25 of 40: Wilson [0.470, 0.758]; v1, 9 of 12, is under the minimum of 20 pairs.
    assert '<td>62%<span class="evidence">95% CI 47–76%, 40 pairs</span></td>' in body
    assert '<td>too few pairs to tell<span class="evidence">12 pairs</span></td>' in body
    assert body.count('<td>too few pairs to tell<span class="evidence">3 pairs</span></td>') == 2  # gold, ann and rev
    assert "75%" not in body  # v1's share is not shown anywhere
    assert re.search(
        r"<dt>RM held-out accuracy \(v2\)</dt>\s*<dd>62%</dd>\s*<dd class=\"evidence\">95% CI 47–76%, 40 pairs", body
    )
    assert re.search(
        r"<dt>Labeler agreement</dt>\s*<dd>50%</dd>\s*<dd class=\"evidence\">95% CI 39–61%, 72 pairs", body
    )
    # The chart draws only the version with enough pairs.
    [chart] = [c for c in response.context["charts"] if c["title"] == "Reward-model accuracy by version"]
    assert chart["series"]["held-out accuracy"] == [[1, 0.625]]


def test_the_api_gives_the_count_and_interval_and_a_null_share_under_the_minimum(admin_user, project):
    from tests.labeling.test_api import client_for

    reward_models_on_12_and_40_heldout_pairs(project)
    v1, v2 = client_for(admin_user).get(f"/api/metrics/?project={project.pk}").json()["reward_models"]
    assert v1["heldout_accuracy"]["share"] is None and v1["heldout_accuracy"]["pairs"] == 12
    assert v1["heldout_accuracy"]["low"] == pytest.approx(0.467690, abs=1e-6)
    assert v1["heldout_accuracy"]["high"] == pytest.approx(0.911060, abs=1e-6)
    assert v2["heldout_accuracy"]["share"] == 0.625 and v2["heldout_accuracy"]["pairs"] == 40
    assert v2["heldout_accuracy"]["low"] == pytest.approx(0.470322, abs=1e-6)
    assert v2["heldout_accuracy"]["high"] == pytest.approx(0.757772, abs=1e-6)
    assert v2["train_accuracy"]["share"] == 0.9 and v2["train_accuracy"]["pairs"] == 30
    assert v2["fresh_accuracy"] == {"share": None, "pairs": 0, "low": None, "high": None}  # nothing scored yet
