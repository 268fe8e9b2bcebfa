import pytest

from training.core.loading import load_model


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """(model, tokenizer) of the tiny test model, ready for generation."""
    return load_model(str(tiny_folder), tiny_folder.parent)


@pytest.fixture
def policy(tiny_folder):
    """A fresh (model, tokenizer) of the tiny test model, for a test that trains it."""
    return load_model(str(tiny_folder), tiny_folder.parent)
