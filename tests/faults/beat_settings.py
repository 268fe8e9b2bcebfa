"""The project's settings with one periodic task due every second: for the beat fault test only."""

from webapp.settings import *  # noqa: F403

CELERY_BEAT_SCHEDULE = {"fail-stale-training-runs": {"task": "training.fail_stale_runs", "schedule": 1.0}}
