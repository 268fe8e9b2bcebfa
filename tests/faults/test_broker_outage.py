"""Redis stopped under a real gunicorn and a real Celery beat (each started by the test, stopped by
its PID, on a throwaway redis-server; the database is the test database).

Labeling goes on without the broker; launching a run says the task queue is unreachable; beat keeps
running and its periodic task reaches the queue again by itself once Redis is back.
"""

import os
import socket
import subprocess
import sys
import time

import pytest
from rest_framework.authtoken.models import Token

from labeling.models import Ranking
from tests.factories import ComparisonTaskFactory, UserFactory
from tests.faults.servers import ROOT, django_env, gunicorn, redis_server
from tests.faults.test_database_restart import Labeler
from tests.waiting import wait_until
from training.models import PolicyVersion, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_labeling_goes_on_and_a_launch_says_the_queue_is_unreachable_while_redis_is_down(
    factory_project, labeler, child_env
):
    factory_project.labelers.add(labeler)
    policy = PolicyVersion.objects.get(project=factory_project)
    tasks = ComparisonTaskFactory.create_batch(2, prompt__project=factory_project, policy_version=policy)
    staff = UserFactory(username="staff", is_staff=True)
    with (
        redis_server() as redis,
        gunicorn(django_env(os.environ["DATABASE_URL"], CELERY_BROKER_URL=redis.url)) as (
            url,
            _server,
        ),
    ):
        redis.stop()
        assert refused(redis.port)
        api = Labeler(url, token=Token.objects.create(user=labeler).key)
        status, task, _ = api.call("GET", f"/api/tasks/next/?project={factory_project.pk}")
        assert status == 200 and task["id"] in {t.pk for t in tasks}
        order = [[c["id"]] for c in task["completions"]]
        status, ranking, _ = api.call("POST", f"/api/tasks/{task['id']}/ranking/", {"order": order})
        assert status == 201 and Ranking.objects.filter(pk=ranking["id"], labeler=labeler).exists()

        from django.test import Client

        browser = Client()
        browser.force_login(labeler)
        page = Labeler(url, session=browser.cookies["sessionid"].value)
        assert page.call("GET", "/")[0] == 200
        status, _, response = page.call("GET", f"/projects/{factory_project.pk}/next/")
        assert status == 302 and "/tasks/" in response.getheader("Location")
        assert page.call("GET", response.getheader("Location"))[0] == 200

        staff_api = Labeler(url, token=Token.objects.create(user=staff).key)
        started = time.monotonic()
        status, body, _ = staff_api.call("POST", "/api/runs/", {"project": factory_project.pk, "kind": "generate"})
        assert status == 503 and "task queue is unreachable" in body["detail"]
        assert time.monotonic() - started < 10  # said at once, not after a long wait
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "task queue is unreachable" in run.error


def test_beat_sends_its_periodic_task_again_once_redis_is_back(child_env, tmp_path):
    with redis_server() as redis:
        env = {**child_env, "CELERY_BROKER_URL": redis.url, "DJANGO_SETTINGS_MODULE": "tests.faults.beat_settings"}
        command = [sys.executable, "-m", "celery", "-A", "webapp", "beat", "--loglevel", "WARNING",
                   "--pidfile", str(tmp_path / "beat.pid")]  # fmt: skip
        log = (tmp_path / "beat.log").open("w")
        beat = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: redis.llen("generation") > 0, 60, "beat sent nothing")  # beat sends every second
            redis.stop()
            time.sleep(4)  # the outage's length is the scenario: 4 s, beat meets the dead broker a few times
            assert beat.poll() is None, "beat exited while Redis was down"
            redis.start()  # the same port, empty: what it holds was sent after the restart
            resumed = time.monotonic()
            wait_until(lambda: redis.llen("generation") > 0, 30, "beat sent nothing after Redis came back")
            print(f"beat's first message after Redis came back: {time.monotonic() - resumed:.1f} s")
            assert beat.poll() is None
            assert "Connection refused" in (tmp_path / "beat.log").read_text()  # it did meet the outage
        finally:
            beat.terminate()
            beat.wait(timeout=30)
            log.close()
