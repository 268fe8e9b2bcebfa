"""The live page of a training run in a real Chromium: progress bar and charts, then the poll."""

import math

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.test_ranking import log_in
from tests.factories import ProjectFactory
from training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def ppo_metrics(steps: int, total: int) -> list[dict]:
    return [
        {
            "step": s, "steps": total, "score": -1 + 0.08 * s + 0.05 * math.sin(s), "kl": 0.02 * s, "beta": 0.05,
            "clipfrac": 0.1 / s, "approx_kl": 0.01 / s, "mean_length": 30 - 0.5 * s, "eos_rate": min(1, 0.05 * s),
        }
        for s in range(1, steps + 1)
    ]  # fmt: skip


def test_the_run_page_shows_the_bar_and_charts_and_follows_the_run(page, live_server, admin_user):
    project = ProjectFactory(name="Helpful answers")
    run = TrainingRun.objects.create(
        project=project,
        kind="ppo",
        status="running",
        progress=0.4,
        metrics=ppo_metrics(8, 20),
        launched_by=admin_user,
        hardware={"device": "cuda:0", "dtype": "bfloat16", "accelerator": "NVIDIA H200"},
    )
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    expect(page.get_by_label("Progress: 40%")).to_be_visible()
    expect(page.locator("figure.chart canvas")).to_have_count(5)
    expect(page.get_by_text("KL to the reference, and β")).to_be_visible()
    expect(page.get_by_text("Running on cuda:0 (NVIDIA H200) in bfloat16")).to_be_visible()
    screenshot(page, "run-ppo-1280")
    # The worker moves on: the page follows without a reload.
    TrainingRun.objects.filter(pk=run.pk).update(
        progress=1.0, status="succeeded", metrics=ppo_metrics(20, 20), finished_at=timezone.now(),
        hardware={"device": "cuda:0", "dtype": "bfloat16", "accelerator": "NVIDIA H200", "peak_memory_mib": 20480.4},
    )  # fmt: skip
    expect(page.locator(".status")).to_have_text("Succeeded", timeout=10_000)
    expect(page.get_by_label("Progress: 100%")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(
        page.get_by_text("Ran on cuda:0 (NVIDIA H200) in bfloat16 · peak accelerator memory 20480 MiB")
    ).to_be_visible()
    screenshot(page, "run-ppo-finished-1280")
