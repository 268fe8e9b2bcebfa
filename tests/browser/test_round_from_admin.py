"""A staff user launches a full round from the admin and follows it: real Chromium, a real Celery
worker on Redis, PostgreSQL, the tiny model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in
from training.models import TrainingRun

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_a_staff_user_launches_a_round_and_watches_it(page, live_server, admin_user, ranked_project, child_env):
    ranked_project.recipe.reward_model_config = {"lr": 1e-3, "max_length": 64, "epochs": 40, "patience": 0}
    ranked_project.recipe.ppo_config = {
        "steps": 12,
        "batch_prompts": 4,
        "minibatch_size": 2,
        "ppo_epochs": 1,
        "max_new_tokens": 8,
    }
    ranked_project.recipe.save()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "generation,training", "-P", "solo",
         "-n", f"browser-{os.getpid()}@%h", "--loglevel", "WARNING"],
        cwd=ROOT, env=child_env,
    )  # fmt: skip
    try:
        log_in(page, live_server, "admin")
        page.goto(f"{live_server.url}/admin/labeling/project/")
        page.get_by_role("checkbox", name="Select this object for an action").first.check()
        page.get_by_label("Action:").select_option("run_full_round")
        page.get_by_role("button", name="Go").click()
        page.get_by_role("link", name="follow run").click()
        expect(page.get_by_role("heading", name="Full round")).to_be_visible()
        bar = page.locator("#run-progress")
        expect(bar).not_to_have_attribute("value", "0", timeout=60_000)  # the bar moves as steps finish
        first_value = int(bar.get_attribute("value"))
        expect(page.locator(".status")).to_have_text("Succeeded", timeout=180_000)
        assert int(page.locator("#run-progress").get_attribute("value")) == 100 > first_value
        screenshot(page, "round-1280")
        page.get_by_role("link", name="RLOO round").click()
        expect(page.locator("figure.chart canvas")).to_have_count(4)  # RLOO_CHARTS
        screenshot(page, "round-rloo-step-1280")
        assert TrainingRun.objects.get(kind="round").status == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=60)
