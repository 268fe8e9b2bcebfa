"""Batched K-completion sampling vs a naive loop (one generate call per prompt per sample).

    .venv/bin/python benchmarks/sampling.py [--prompts FILE] [--model REF] [--n 16] [--k 4] [--max-new-tokens 48]

FILE is JSONL with a "prompt" field (default: the demo prompts). Both sides use the same model,
settings and prompts, in the same run, on this machine's threads. Prints one JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.core.config import SamplingConfig  # noqa: E402
from training.core.generation import (  # noqa: E402
    _decode,
    eos_ids,
    format_prompt,
    generate_kwargs,
    sample,
)
from training.core.loading import load_model  # noqa: E402


@torch.no_grad()
def naive(model, tokenizer, prompts: list[str], k: int, config: SamplingConfig) -> int:
    """One generate call per prompt per sample; returns the tokens generated."""
    stop, tokens = eos_ids(model, tokenizer), 0
    torch.manual_seed(config.seed)
    for prompt in prompts:
        batch = tokenizer([format_prompt(tokenizer, prompt)], return_tensors="pt", add_special_tokens=False)
        for _ in range(k):
            output = model.generate(**batch, **generate_kwargs(config, tokenizer, stop))
            sampled = _decode(output[0, batch["input_ids"].shape[1] :], stop, tokenizer)
            tokens += sampled.token_count + (sampled.finish_reason == "eos")
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=Path, default=ROOT / "labeling" / "demo" / "prompts.jsonl")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--store", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    prompts = [json.loads(line)["prompt"] for line in args.prompts.read_text().splitlines() if line.strip()][: args.n]
    model, tokenizer = load_model(args.model, args.store)
    config = SamplingConfig(temperature=0.7, max_new_tokens=args.max_new_tokens, seed=0)
    sample(model, tokenizer, prompts[:1], 1, SamplingConfig(max_new_tokens=4))  # warm-up

    started = time.perf_counter()
    batched = sample(model, tokenizer, prompts, args.k, config)
    batched_s = time.perf_counter() - started
    batched_tokens = sum(s.token_count + (s.finish_reason == "eos") for group in batched for s in group)

    started = time.perf_counter()
    naive_tokens = naive(model, tokenizer, prompts, args.k, config)
    naive_s = time.perf_counter() - started

    batched_rate, naive_rate = batched_tokens / batched_s, naive_tokens / naive_s
    print(json.dumps({
        "model": args.model, "prompts": len(prompts), "k": args.k, "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(), "device": "cpu",
        "batched": {"tokens": batched_tokens, "seconds": round(batched_s, 2), "tokens_per_s": round(batched_rate, 1)},
        "naive": {"tokens": naive_tokens, "seconds": round(naive_s, 2), "tokens_per_s": round(naive_rate, 1)},
        "ratio": round(batched_rate / naive_rate, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
