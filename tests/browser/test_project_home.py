"""The project home in a real Chromium: a launch button queues a run whose page follows it through a
phase to its outcome; a refused launch says why; figures on too few pairs say so on the dashboard
and in the API."""

import threading

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import Ranking
from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in
from tests.factories import ComparisonTaskFactory, ProjectFactory, UserFactory
from tests.training import test_gate as gate_fixtures
from training.executors import carry_out
from training.gate import do_promote_through_gate
from training.models import PolicyVersion, RewardModelVersion, TrainingRun
from training.services import do_register_base_policy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def carry_out_pausing_at_a_phase(run_id: int, phase_shown: threading.Event, go_on: threading.Event) -> None:
    """The worker's part, here in a thread: the reward-model executor, held at its first named
    phase until the page has shown it."""

    def echo(run: TrainingRun) -> None:
        if not phase_shown.is_set() and run.metrics[-1].get("phase"):
            phase_shown.set()
            go_on.wait(timeout=60)

    try:
        carry_out(run_id, echo=echo)
    finally:
        phase_shown.set()
        connection.close()


def test_a_launch_from_the_project_home_moves_through_a_phase_to_its_outcome(
    page, live_server, admin_user, ranked_project
):
    ranked_project.recipe.reward_model_config = {"max_length": 64, "epochs": 2, "patience": 0}
    ranked_project.recipe.save()
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/labeling/project/{ranked_project.pk}/change/")
    page.get_by_role("link", name="Project home", exact=True).click()
    expect(page.get_by_role("heading", name="Next round")).to_be_visible()
    expect(page.get_by_text("Idle: nothing queued or running.").first).to_be_visible()
    screenshot(page, "project-home-1280")
    page.locator('form[data-kind="rm"]').get_by_role("button", name="Reward model").click()
    expect(page.get_by_role("heading", name="Reward model · run")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Queued")
    run = TrainingRun.objects.get(kind="rm")
    assert run.launched_by == admin_user
    phase_shown, go_on = threading.Event(), threading.Event()
    worker = threading.Thread(target=carry_out_pausing_at_a_phase, args=(run.pk, phase_shown, go_on))
    worker.start()
    try:
        assert phase_shown.wait(timeout=120)
        expect(page.locator(".run-phase")).to_be_visible(timeout=10_000)  # the poll brings the phase in
        expect(page.locator(".status")).to_have_text("Running")
        screenshot(page, "project-home-run-phase-1280")
    finally:
        go_on.set()
        worker.join(timeout=300)
    expect(page.locator(".status")).to_have_text("Succeeded", timeout=15_000)
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("What came out")
    expect(outcome).to_contain_text("Reward model v1")
    expect(outcome).to_contain_text("held-out accuracy")
    screenshot(page, "project-home-run-outcome-1280")
    page.get_by_role("link", name=ranked_project.name).click()
    expect(page.locator(".stats")).to_contain_text("v1")  # the home's reward model is now v1


def test_a_refused_launch_says_why_and_the_pickers_avoid_it(page, live_server, admin_user):
    project = ProjectFactory(name="Helpful answers")
    base = do_register_base_policy(project)
    PolicyVersion.objects.create(project=project, version=1, checkpoint="x", parent=base, status="candidate")
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/")
    blind = page.locator('form[data-kind="blind_eval"]')
    blind.get_by_label("a (baseline)").select_option(label="v0 (active)")
    blind.get_by_label("b (challenger)").select_option(label="v0 (active)")
    blind.get_by_role("button", name="Blind human evaluation").click()
    expect(page.get_by_role("heading", name="Not started: Blind human evaluation")).to_be_visible()
    expect(page.locator(".refusal")).to_contain_text("Both sides are policy v0: choose two different versions.")
    screenshot(page, "project-home-refused-1280")
    blind = page.locator('form[data-kind="blind_eval"]')
    blind.get_by_label("b (challenger)").select_option(label="v1 (candidate)")
    blind.get_by_role("button", name="Blind human evaluation").click()
    expect(page.locator(".refusal")).to_contain_text("has no held-out prompts left")  # the next thing to do
    assert not TrainingRun.objects.exists()


def test_figures_on_too_few_pairs_say_so_on_the_dashboard_and_in_the_api(page, live_server, admin_user):
    project = ProjectFactory(name="Few pairs", k=3, overlap=2)
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    for _ in range(2):  # 2 tasks ranked by both: 6 pairs compared, under the 20 it takes to tell
        task = ComparisonTaskFactory(prompt__project=project, target_overlap=2)
        ids = [[item.completion_id] for item in task.items.order_by("position")]
        Ranking.objects.create(task=task, labeler=ann, order=ids)
        Ranking.objects.create(task=task, labeler=bob, order=ids)
    RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", heldout_accuracy=0.42, trained_through_ranking_id=0,
        trained_through_time=timezone.now(), rankings_count=4, metrics={"heldout": {"pairs": 12}},
    )  # fmt: skip
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/dashboard/")
    stats = page.locator("section.card dl.stats").first
    expect(stats).to_contain_text("too few pairs to tell")
    expect(stats).to_contain_text("12 pairs")
    expect(stats).not_to_contain_text("42%")
    screenshot(page, "dashboard-too-few-1280")
    figures = page.request.get(f"{live_server.url}/api/metrics/?project={project.pk}").json()
    assert figures["reward_models"][0]["heldout_accuracy"] == {
        "share": None, "pairs": 12, "low": pytest.approx(0.193, abs=0.01), "high": pytest.approx(0.68, abs=0.01)
    }  # fmt: skip
    assert figures["agreement"]["pairwise"]["share"] is None and figures["agreement"]["pairwise"]["pairs"] == 6


def test_the_project_home_says_why_the_gate_kept_a_candidate_back_and_draws_the_learning_curve(
    page, live_server, admin_user
):
    project = ProjectFactory(name="Compounding", k=2)
    base = do_register_base_policy(project)
    rm = gate_fixtures.reward_model(project)
    gate_fixtures.fresh_labels(rm, agreed=60, pairs=80)
    v1 = gate_fixtures.candidate(project, rm, version=1)
    assert do_promote_through_gate(v1)  # promoted: its reward model beats chance, its answers kept their length
    gate_fixtures.blind_rankings(project, base, v1, wins=16, losses=8)
    v2 = gate_fixtures.candidate(project, rm, {**gate_fixtures.GOOD_PROBE, "mean_length": 12.0}, version=2)
    assert not do_promote_through_gate(v2)  # its answers shrank to a quarter: kept back
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/")
    kept = page.locator(".gate-kept")
    expect(kept).to_contain_text("v2 was kept back by the promotion gate")
    expect(kept).to_contain_text("Its answers' length moved too far: 12.0 tokens on average against its parent's 44.0")
    curve = page.locator("section.learning-curve")
    expect(curve.locator("tbody tr")).to_have_count(2)
    expect(curve.locator("tbody tr").first).to_contain_text("67%")  # v1 won 16 of 24 blind comparisons
    expect(curve.locator("tbody tr").nth(1)).to_contain_text("kept back: length")
    screenshot(page, "project-home-gate-1280")
    page.goto(f"{live_server.url}/training/projects/{project.pk}/dashboard/")
    expect(page.locator("figcaption", has_text="Learning curve")).to_be_visible()
    screenshot(page, "dashboard-learning-curve-1280")
