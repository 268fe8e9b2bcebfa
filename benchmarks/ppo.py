"""PPO round speed: our PPOTrainer vs TRL's experimental PPO, same settings, same run.

    .venv/bin/python benchmarks/ppo.py --prompts FILE --model DIR [--vs-trl] [--json] [--episodes N]

A round of 16 prompts, batch 8, 32 new tokens, 1 PPO epoch (one minibatch of 8), fp32, on this
machine's threads. `--episodes 64` runs a longer round over the same 16 prompts (8 steps), where
the first step's one-off costs (the optimisers' state, first touches of memory) weigh less.
Policy, reference, reward and value models all start from DIR (the reward head is untrained: this
measures speed, not learning). `--vs-trl` needs the last TRL release that
ships `trl.experimental.ppo`, installed beside the project without touching .venv:
    .venv/bin/pip install --no-deps --target var/bench/trl-ppo trl==1.12.0
Prints one JSON line with samples/s and the seconds spent generating, scoring and training.

Each side runs in a fresh child process: a second run in the same process reuses the first's heap
(glibc keeps freed memory once its mmap threshold has grown) and was 10-20% faster, whichever side
it was, which is no comparison.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.core.config import PPOConfig, RewardModelConfig  # noqa: E402
from training.core.generation import format_prompt  # noqa: E402
from training.core.loading import load_model  # noqa: E402
from training.core.ppo import PPOTrainer  # noqa: E402
from training.core.reward_model import new_reward_model, reward_model_scorer  # noqa: E402

PROMPTS, BATCH, NEW_TOKENS = 16, 8, 32  # PROMPTS: distinct prompts, and the default --episodes


def ours(model_dir: Path, prompts: list[str], episodes: int) -> dict:
    torch.manual_seed(0)
    policy, tokenizer = load_model(str(model_dir), model_dir.parent)
    rm, _ = new_reward_model(str(model_dir), model_dir.parent, RewardModelConfig())
    critic, _ = new_reward_model(str(model_dir), model_dir.parent, RewardModelConfig())
    config = PPOConfig(
        steps=episodes // BATCH, batch_prompts=BATCH, minibatch_size=BATCH, ppo_epochs=1,
        max_new_tokens=NEW_TOKENS, temperature=0.7,
    )  # fmt: skip
    trainer = PPOTrainer(
        policy, tokenizer, critic, reward_model_scorer(rm.requires_grad_(False), tokenizer, 512), config
    )
    started = time.perf_counter()
    history = trainer.train(prompts)
    seconds = time.perf_counter() - started
    phases = {phase: round(sum(h[f"time_{phase}"] for h in history), 2) for phase in ("generate", "score", "train")}
    return {"samples": episodes, "seconds": round(seconds, 2), "samples_per_s": round(episodes / seconds, 3), **phases}


def trl(model_dir: Path, prompts: list[str], episodes: int) -> dict:
    sys.path.insert(0, str(ROOT / "var" / "bench" / "trl-ppo"))
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer as TRLPPOTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    tokenizer.pad_token = tokenizer.unk_token
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    value = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    for model in (policy, reference, reward, value):
        model.config.pad_token_id = tokenizer.pad_token_id
    texts = [format_prompt(tokenizer, p) for p in prompts]
    dataset = Dataset.from_dict({"input_ids": [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]})
    args = TRLPPOConfig(
        output_dir=str(ROOT / "var" / "bench" / "trl-ppo-out"), per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=1, total_episodes=episodes,
        response_length=NEW_TOKENS, temperature=0.7, stop_token="eos", local_rollout_forward_batch_size=BATCH,
        num_sample_generations=0, bf16=False, fp16=False, gradient_checkpointing=False, report_to=[],
        save_strategy="no", use_cpu=True, learning_rate=3e-6, kl_coef=0.05, missing_eos_penalty=-1.0,
    )  # fmt: skip
    trainer = TRLPPOTrainer(
        args=args, processing_class=tokenizer, model=policy, ref_model=reference, reward_model=reward,
        value_model=value, train_dataset=dataset,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {"samples": episodes, "seconds": round(seconds, 2), "samples_per_s": round(episodes / seconds, 3)}


def in_child(side: str, args: argparse.Namespace) -> dict:
    """One side's figures, measured in a fresh interpreter."""
    command = [sys.executable, __file__, "--prompts", str(args.prompts), "--model", str(args.model), "--side", side,
               "--episodes", str(args.episodes)]  # fmt: skip
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--vs-trl", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print only the JSON line.")
    parser.add_argument("--episodes", type=int, default=PROMPTS, help="Completions trained on (a multiple of 8).")
    parser.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)  # a child's one run
    args = parser.parse_args()
    if args.episodes < BATCH or args.episodes % BATCH:
        parser.error(f"--episodes must be a positive multiple of the batch, {BATCH}")
    if args.side:
        prompts = [json.loads(line)["prompt"] for line in args.prompts.read_text().splitlines() if line.strip()]
        print(json.dumps({"ours": ours, "trl": trl}[args.side](args.model, prompts[:PROMPTS], args.episodes)))
        return
    result = {"prompts": PROMPTS, "episodes": args.episodes, "batch": BATCH, "new_tokens": NEW_TOKENS, "ppo_epochs": 1,
              "dtype": "float32", "threads": torch.get_num_threads(), "ours": in_child("ours", args)}  # fmt: skip
    if args.vs_trl:
        result["trl"] = in_child("trl", args)
        result["ratio"] = round(result["ours"]["samples_per_s"] / result["trl"]["samples_per_s"], 2)
    if not args.json:
        print(f"ours: {result['ours']['samples_per_s']} samples/s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
