import pytest

from tests.model_fixtures import tiny_folder  # noqa: F401 - a fixture, found by name
from training.core.loading import load_model


@pytest.fixture(scope="session")
def tiny(tiny_folder):  # noqa: F811 - the fixture imported above
    """(model, tokenizer) of the tiny test model, ready for generation."""
    return load_model(str(tiny_folder), tiny_folder.parent)
