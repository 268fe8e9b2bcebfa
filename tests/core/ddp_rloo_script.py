"""Run by tests/core/test_several_processes.py under torchrun: RLOO steps of the tiny model on two
CPU processes (gloo), each sampling its own prompts; only rank 0 saves. Prints one JSON line a rank."""

import json
import math
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from training.core.config import PPOConfig  # noqa: E402
from training.core.loading import load_model  # noqa: E402
from training.core.ppo import PPOTrainer  # noqa: E402

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
accelerator = Accelerator(cpu=True)
rank = accelerator.process_index
torch.manual_seed(rank)  # each rank draws its own samples
policy, tokenizer = load_model(str(folder), folder.parent)
before = sum(float(p.double().sum()) for p in policy.parameters())
config = PPOConfig.rloo(batch_prompts=2, samples_per_prompt=2, max_new_tokens=4, steps=2, lr=1e-3, seed=rank)
trainer = PPOTrainer(policy, tokenizer, None, lambda p, c: torch.tensor([len(t) / 4 for t in c]), config,
                     accelerator=accelerator)  # fmt: skip
logged = [trainer.step([f"Question {rank}-{step}-{i}?" for i in range(2)]) for step in range(2)]
after = sum(float(p.double().sum()) for p in trainer.unwrapped_policy.parameters())
if accelerator.is_main_process:
    trainer.trained_policy().save_pretrained(out / "policy")
finite = all(math.isfinite(v) for f in logged for v in f.values() if isinstance(v, float))
print(json.dumps({"rank": rank, "processes": accelerator.num_processes, "finite": finite, "before": before,
                  "after": after}), flush=True)  # fmt: skip
