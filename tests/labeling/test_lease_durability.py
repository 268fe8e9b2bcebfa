"""A lease is committed as durably as a ranking. Committed without waiting for the WAL flush, a
PostgreSQL crash lost leases the labelers had already been shown, and the ranking each of them then
sent was refused with 404 (found by tests/faults/test_database_restart.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.services import do_assign_next_task
from tests.factories import ComparisonTaskFactory, ProjectFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_lease_commit_waits_for_the_disk_like_a_ranking(labeler):
    project = ProjectFactory(k=2)
    ComparisonTaskFactory(prompt__project=project)
    with CaptureQueriesContext(connection) as queries:
        assert do_assign_next_task(project, labeler) is not None
    assert not [q["sql"] for q in queries if "synchronous_commit" in q["sql"].lower()]
