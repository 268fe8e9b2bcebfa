"""Reward-model training speed: our K-way trainer (one forward per completion) vs TRL's RewardTrainer.

    .venv/bin/python benchmarks/reward_model.py --data FILE --model DIR [--vs-trl] [--json]

FILE is JSONL of {"prompt": str, "completions": [str, ...], "ranking": [indices best to worst]};
DIR a Hugging Face causal-LM folder (the bundled model is at var/models/base/smollm2-135m-instruct
once the demo or the tests have converted it). Both train 1 epoch at fp32, max length 256, on
this machine's threads. `--vs-trl` needs TRL: `.venv/bin/pip install -r benchmarks/requirements.txt`.
"""

import argparse
import json
import sys
import time
from itertools import combinations
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.core.config import RewardModelConfig  # noqa: E402
from training.core.data import RankedPrompt, collate  # noqa: E402
from training.core.generation import format_prompt  # noqa: E402
from training.core.reward_model import new_reward_model  # noqa: E402
from training.core.reward_training import train_reward_model  # noqa: E402

MAX_LENGTH = 256


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul FLOP/s of this machine with torch's threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started)


def load(path: Path) -> list[RankedPrompt]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [RankedPrompt(r["prompt"], r["completions"], [[i] for i in r["ranking"]]) for r in rows]


def ours(model_dir: Path, data: list[RankedPrompt]) -> dict:
    config = RewardModelConfig(max_length=MAX_LENGTH, batch_prompts=8, epochs=1, dtype="float32")
    model, tokenizer = new_reward_model(str(model_dir), model_dir.parent, config)
    batches = [collate([item], tokenizer, MAX_LENGTH, "drop") for item in data]
    tokens = sum(int(b.prompt_mask.sum() + b.completion_mask.sum()) for b in batches)  # computed, not padding
    matmul_params = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name)
    started = time.perf_counter()
    train_reward_model(model, tokenizer, data, config)
    seconds = time.perf_counter() - started
    pairs = sum(len(item.completions) * (len(item.completions) - 1) // 2 for item in data)
    return {"pairs": pairs, "seconds": round(seconds, 2), "pairs_per_s": round(pairs / seconds, 2),
            "sequences_forwarded": sum(len(i.completions) for i in data),
            "flops": 6 * matmul_params * tokens}  # fmt: skip


def trl(model_dir: Path, data: list[RankedPrompt]) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.unk_token or tokenizer.pad_token
    rows = []
    for item in data:
        best_first = [group[0] for group in item.order]
        prompt = format_prompt(tokenizer, item.prompt)
        for a, b in combinations(best_first, 2):  # every C(K,2) pair, winner first
            rows.append({"prompt": prompt, "chosen": item.completions[a], "rejected": item.completions[b]})
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(
        output_dir=str(ROOT / "var" / "bench" / "trl-rm"), per_device_train_batch_size=8, num_train_epochs=1,
        max_length=MAX_LENGTH, bf16=False, fp16=False, gradient_checkpointing=False, learning_rate=9e-6,
        report_to=[], save_strategy="no", logging_steps=1000, dataloader_num_workers=0, use_cpu=True,
    )  # fmt: skip
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {"pairs": len(rows), "seconds": round(seconds, 2), "pairs_per_s": round(len(rows) / seconds, 2),
            "sequences_forwarded": 2 * len(rows)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--vs-trl", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print only the JSON line.")
    args = parser.parse_args()
    data = load(args.data)
    peak = matmul_peak_flops()
    result = {"prompts": len(data), "k": len(data[0].completions), "max_length": MAX_LENGTH, "dtype": "float32",
              "threads": torch.get_num_threads(), "matmul_peak_gflops": round(peak / 1e9, 1)}  # fmt: skip
    mine = ours(args.model, data)
    result["ours"] = {k: v for k, v in mine.items() if k != "flops"}
    result["ours"]["fraction_of_peak"] = round(mine["flops"] / mine["seconds"] / peak, 3)
    if args.vs_trl:
        result["trl"] = trl(args.model, data)
        result["ratio"] = round(result["ours"]["pairs_per_s"] / result["trl"]["pairs_per_s"], 2)
    if not args.json:
        print(
            f"ours: {mine['pairs_per_s']} pairs/s"
            + (f", TRL: {result['trl']['pairs_per_s']} pairs/s" if args.vs_trl else ""),
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
