"""Writes a ranking data file for benchmarks/reward_model.py from the bundled model's own samples.

    .venv/bin/python benchmarks/make_ranking_data.py --out var/bench/rankings.jsonl [--n 64] [--k 4]

Prompts are the demo prompts (cycled with a suffix past 50); K completions each are sampled with
the bundled model; the ranking prefers longer answers (a stand-in preference, ties never).
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.core.config import SamplingConfig  # noqa: E402
from training.core.generation import sample_distinct  # noqa: E402
from training.core.loading import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    demo = ROOT / "labeling" / "demo" / "prompts.jsonl"
    base = [json.loads(line)["prompt"] for line in demo.read_text().splitlines() if line.strip()]
    prompts = [base[i % len(base)] + ("" if i < len(base) else " Keep it short.") for i in range(args.n)]
    model, tokenizer = load_model("smollm2-135m-instruct", ROOT / "var" / "models")
    config = SamplingConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=1)
    samples = sample_distinct(
        model, tokenizer, prompts, args.k, config, progress=lambda d, t: print(f"\r{d}/{t}", end="")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as out:
        for prompt, group in zip(prompts, samples, strict=True):
            if group is None:
                continue
            texts = [s.text for s in group]
            ranking = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            out.write(json.dumps({"prompt": prompt, "completions": texts, "ranking": ranking}) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
