"""The Celery app reaches a real worker through the configured broker (Redis in CI)."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.waiting import wait_until
from webapp.celery import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.redis
def test_a_real_worker_answers_through_the_broker():
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "webapp",
            "worker",
            "-Q",
            "generation",
            "-P",
            "solo",
            "-n",
            f"ping-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        ping = partial(app.control.ping, timeout=1.0)  # each ping waits a second for replies
        replies = wait_until(ping, 60, "no worker answered a ping through the broker", interval=0)
        assert any(name.startswith(f"ping-{os.getpid()}@") for reply in replies for name in reply)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
