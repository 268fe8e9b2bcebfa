import pytest

from training.core.loading import load_model


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """(model, tokenizer) of the tiny test model, ready for generation."""
    return load_model(str(tiny_folder), tiny_folder.parent)
