import pytest

from tests.factories import ProjectFactory
from tests.tiny_model import build_tiny_model
from training.services import do_register_base_policy


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny_project(db, tiny_folder):
    """A project on the tiny model with 5 prompts and its active base policy; K=3, short answers."""
    project = ProjectFactory(base_model=str(tiny_folder), k=3, max_new_tokens=8, temperature=1.0)
    for n in range(5):
        project.prompts.create(text=f"Question {n}: what is {n} + {n}?")
    do_register_base_policy(project)
    return project
