"""The pairs export trains a reward model in the real TRL: torch, transformers, trl and the tiny model,
so it lives here rather than beside the other export tests in tests/labeling (which load no torch)."""

import io
import math

import pytest
from django.core.management import call_command

from tests.labeling.test_conversations import chat_project  # noqa: F401 - the fixture: a 3-turn conversation
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


def test_the_conversational_export_goes_through_trls_reward_and_dpo_data_paths_as_our_tokens(
    chat_project,  # noqa: F811 - the fixture imported above: a plain ranking and a 3-turn one
    tiny_folder,
    tmp_path,
    monkeypatch,
    accelerate_state_restored,
):
    """TRL tokenises the conversational export through the chat template into exactly the tokens our
    reward model and DPO read (encode_parts); RewardTrainer and DPOTrainer each take a step on it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import torch
    from datasets import load_dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    from labeling.conversations import as_chat
    from training.core.data import encode_parts

    path = tmp_path / "conversational.jsonl"
    call_command("export_preferences", "--project", chat_project.name, "--format", "conversational", "--output",
                 str(path), stderr=io.StringIO())  # fmt: skip
    dataset = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and dataset.num_rows == 3
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    ours = []
    for row in dataset:
        chat = as_chat("", row["prompt"])
        chat = chat if len(chat) > 1 else chat[0].content
        prompt_ids, chosen = encode_parts(tokenizer, chat, row["chosen"][0]["content"], 512)
        _, rejected = encode_parts(tokenizer, chat, row["rejected"][0]["content"], 512)
        ours.append((prompt_ids, chosen, rejected))
    common = {"max_steps": 1, "per_device_train_batch_size": 3, "learning_rate": 1e-3, "report_to": [],
              "save_strategy": "no", "use_cpu": True, "dataloader_num_workers": 0, "bf16": False,
              "activation_checkpointing": False}  # fmt: skip

    config = AutoConfig.from_pretrained(tiny_folder, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_config(config)
    reward = RewardTrainer(model=rm, args=RewardConfig(output_dir=str(tmp_path / "rm"), max_length=512, **common),
                           train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    for row, (prompt_ids, chosen, rejected) in zip(reward.train_dataset, ours, strict=True):
        assert (row["chosen_ids"], row["rejected_ids"]) == (prompt_ids + chosen, prompt_ids + rejected)
    reward.train()
    assert reward.state.global_step == 1

    policy = AutoModelForCausalLM.from_pretrained(tiny_folder)
    dpo = DPOTrainer(model=policy, args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_length=512, **common),
                     train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    for row, (prompt_ids, chosen, rejected) in zip(dpo.train_dataset, ours, strict=True):
        assert (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) == (prompt_ids, chosen, rejected)
    dpo.train()
    assert dpo.state.global_step == 1
