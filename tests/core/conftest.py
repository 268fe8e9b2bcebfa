import pytest

from tests.model_fixtures import tiny_folder  # noqa: F401 - a fixture, found by name
from training.core.loading import load_model


@pytest.fixture(scope="session")
def tiny(tiny_folder):  # noqa: F811 - the fixture imported above
    """(model, tokenizer) of the tiny test model, ready for generation."""
    return load_model(str(tiny_folder), tiny_folder.parent)


@pytest.fixture
def policy(tiny_folder):  # noqa: F811 - the fixture imported above, asked for by name
    """A fresh (model, tokenizer) of the tiny test model, for a test that trains it."""
    return load_model(str(tiny_folder), tiny_folder.parent)
