import pytest

from tests.tiny_model import build_tiny_model
from training.core.loading import load_model


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """(model, tokenizer) of the tiny test model, ready for generation."""
    return load_model(str(tiny_folder), tiny_folder.parent)
