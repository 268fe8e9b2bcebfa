"""The pairs export trains a reward model in the real TRL: torch, transformers, trl and the tiny model,
so it lives here rather than beside the other export tests in tests/labeling (which load no torch)."""

import io
import math

import pytest
from django.core.management import call_command

from tests.labeling.test_exporting import project  # noqa: F401 - the fixture: two hand-made rankings, a tie

pytestmark = pytest.mark.django_db


@pytest.fixture
def accelerate_state_restored():
    """Trainer leaves accelerate's process-wide state behind (its mixed precision, say); later tests build
    their own Accelerator and must not inherit it."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_trls_reward_trainer_trains_on_the_pairs_export(
    project,  # noqa: F811 - the fixture imported above
    tiny_folder,
    tmp_path,
    monkeypatch,
    accelerate_state_restored,
):
    """The real TRL: the export loads with datasets' JSON loader and RewardTrainer takes two steps on it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # trl and datasets take seconds to import, and only this test needs them
    import torch
    from datasets import load_dataset
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    path = tmp_path / "pairs.jsonl"
    call_command("export_preferences", "--project", "Export me", "--format", "pairs", "--ties", "half",
                 "--output", str(path), stderr=io.StringIO())  # fmt: skip
    dataset = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    assert dataset.num_rows == 8

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    config = AutoConfig.from_pretrained(tiny_folder, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, dataloader_num_workers=0, max_length=128,
        activation_checkpointing=False, bf16=False,
    )  # fmt: skip
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()

    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert not torch.equal(before["score.weight"], model.score.weight.detach())
