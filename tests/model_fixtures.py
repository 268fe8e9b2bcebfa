"""The tiny-model fixtures, for the folders whose tests run a model (torch, transformers).

Each such folder's conftest imports them by name; the root conftest does not, so tests that only
need rows (tests/labeling, the page, API and access tests) load no torch.
"""

import pytest

from tests.factories import ProjectFactory, rank_every_task
from tests.tiny_model import build_tiny_model
from training.executors import carry_out
from training.services import create_run, do_register_base_policy


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny_project(db, tiny_folder):
    """A project on the tiny model with 5 prompts and its active base policy; K=3, short answers.
    Its recipe promotes without the gate: a reward model of 5 rankings cannot beat chance, and these
    tests are about what promotion leads to (tests/training/test_gate.py weighs the gate itself)."""
    project = ProjectFactory(base_model=str(tiny_folder), k=3, max_new_tokens=8, temperature=1.0, promotion_gate=False)
    for n in range(5):
        project.prompts.create(text=f"Question {n}: what is {n} + {n}?")
    do_register_base_policy(project)
    return project


@pytest.fixture
def ranked_project(tiny_project, labeler):
    """The tiny project with every prompt sampled and ranked once: the longer completion wins."""
    carry_out(create_run(tiny_project, "generate", prompts=5).pk)
    rank_every_task(tiny_project, labeler)
    return tiny_project
