import pytest

from training.core.checkpoints import atomic_folder
from training.core.loading import load_model
from training.core.references import ModelLoadError, check_reference


def test_it_loads_a_local_folder_with_a_pad_that_is_not_eos(tiny_folder, tmp_path):
    model, tokenizer = load_model(str(tiny_folder), tmp_path)
    assert not model.training
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_a_path_relative_to_the_store_is_found(tiny_folder):
    model, _ = load_model(tiny_folder.name, tiny_folder.parent)
    assert model.config.hidden_size == 32


def test_an_unknown_alias_is_named_in_the_error(tmp_path):
    with pytest.raises(ModelLoadError, match="Unknown model alias 'smollm-9000'.*smollm2-135m-instruct"):
        load_model("smollm-9000", tmp_path)


def test_a_missing_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(ModelLoadError, match="No model folder at '/nowhere/model'"):
        load_model("/nowhere/model", tmp_path)


def test_a_folder_that_is_not_a_model_is_named_in_the_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="empty' is not a model folder: it has no config.json"):
        check_reference(str(tmp_path / "empty"), tmp_path)


def test_a_broken_model_folder_is_named_in_the_error(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="Could not load model '.*broken'"):
        load_model(str(broken), tmp_path)


def test_a_failed_write_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "ckpt") as staging:
        (staging / "weights").write_text("half")
        raise RuntimeError("crash while saving")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_is_never_overwritten(tmp_path):
    with atomic_folder(tmp_path / "ckpt") as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(FileExistsError), atomic_folder(tmp_path / "ckpt"):
        pass
    assert (tmp_path / "ckpt" / "weights").read_text() == "v1"
