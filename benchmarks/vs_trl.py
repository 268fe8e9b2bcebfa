"""Speed against TRL (issue 18): our SFT, DPO and RLOO against TRL's SFTTrainer, DPOTrainer and
RLOOTrainer on the same model, data and settings, each (algorithm, side) in a fresh process.

    python benchmarks/vs_trl.py all [--model PATH] [--steps N] [--json]
    python benchmarks/vs_trl.py {sft,dpo,rloo} --side {ours,trl} [--model PATH] [--steps N] --json

`all` runs the six children one after the other (ours with .venv/bin/python, TRL with
var/trl-venv/bin/python) and prints ours/TRL per algorithm; a child prints one JSON line. Run it
alone on the machine: two torch processes on 2 cores slow each other many times over. TRL lives in
its own venv so that .venv stays as the project pins it (benchmarks/requirements.txt):

    python3.11 -m venv var/trl-venv
    var/trl-venv/bin/pip install torch==2.13.0 transformers==5.23.0 "trl==1.16.*"

(torch exactly, the local CPU build: a looser pin pulls CUDA wheels; transformers as in .venv,
`.venv/bin/pip show transformers`.)

Every side warms up on one step, then times `--steps` more: ours as a second call of
train_sft/train_dpo on the rest of the data (its DPO reference pass included) or `steps` calls
of PPOTrainer.step; TRL from the end of its first optimiser step to the end of its last (its
tokenisation and reference-model set-up, done in __init__, not included). fp32, no gradient
checkpointing, no LoRA, 2 threads on both sides. Data: P synthetic prompts with K = 4 completions
of 40-64 tokens each, ranked by `reward_of`, which is also the RLOO reward. Per step, 4 prompts:
SFT on each prompt's best completion (loss on the answer and its EOS), DPO on the C(4,2) = 6 pairs
of each ranking (24 pairs), RLOO on 4 samples of each prompt (16 completions, 64 new tokens at
most, temperature 0.7, one update per batch, KL β 0.05). `preempted_per_s` counts how often the
child's threads were preempted: high (hundreds a second) when something else had the cores.

The full run on the bundled SmolLM2-135M-Instruct, about 15 minutes (10-20) at the default 5 steps:
    .venv/bin/python benchmarks/vs_trl.py all
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = {"ours": ROOT / ".venv" / "bin" / "python", "trl": ROOT / "var" / "trl-venv" / "bin" / "python"}
BUNDLED = "smollm2-135m-instruct"
ALGORITHMS = ("rloo", "dpo", "sft")
UNIT = {"rloo": "samples/s", "dpo": "pairs/s", "sft": "tokens/s"}
GOAL = {"rloo": 1.5, "dpo": 2.0, "sft": 1.0}  # ours/TRL wanted by issue 18
LR = {"rloo": 1e-5, "dpo": 5e-6, "sft": 2e-5}
K, BATCH_PROMPTS, NEW_TOKENS, TEMPERATURE, KL_BETA, MAX_LENGTH, THREADS = 4, 4, 64, 0.7, 0.05, 512, 2

# --- shared by both sides: the stdlib and a tokenizer only, no project import --------------------

TOPICS = ["river", "garden", "market", "winter", "library", "harbour", "forest", "kitchen", "bridge", "valley",
          "station", "orchard", "island", "workshop", "meadow", "castle"]  # fmt: skip
WORDS = ["the", "a", "quiet", "old", "bright", "small", "green", "early", "morning", "evening", "light", "water",
         "stone", "path", "house", "people", "walk", "slowly", "through", "under", "near", "over", "and", "with",
         "every", "day", "birds", "sing", "wind", "moves", "soft", "rain", "falls", "on", "roofs", "children",
         "play", "music", "drifts", "along", "open", "doors", "warm", "bread", "smells", "sweet"]  # fmt: skip


def chat_prompt(tokenizer, text: str) -> str:
    """The prompt as a user turn of the chat template, ready for the answer: what our
    training.core.generation.format_prompt gives (checked on our side)."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text


def reward_of(text: str) -> float:
    """Share of vowels among the letters: cheap, and the same function of the text on both sides."""
    letters = [c for c in text.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)


@dataclass(frozen=True)
class Ranking:
    prompt: str
    completions: list[str]
    order: list[int]
    """Indices into `completions`, best first (highest `reward_of`, then the lower index)."""


def completion(tokenizer, rng: random.Random, tokens: int) -> str:
    """Words drawn from WORDS while the text stays within `tokens` tokens."""
    text = rng.choice(WORDS).capitalize()
    while True:
        longer = f"{text} {rng.choice(WORDS)}"
        if len(tokenizer(longer + ".", add_special_tokens=False)["input_ids"]) > tokens:
            return text + "."
        text = longer


def build_rankings(tokenizer, count: int, seed: int = 0) -> list[Ranking]:
    """`count` prompts, each with K completions of 40 to 64 tokens, ranked by `reward_of`."""
    rng = random.Random(seed)
    rankings = []
    for i in range(count):
        a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]
        prompt = f"Write a short note ({i}) about the {a} and the {b}."
        completions = [completion(tokenizer, rng, rng.randint(40, 64)) for _ in range(K)]
        order = sorted(range(K), key=lambda j: (-reward_of(completions[j]), j))
        rankings.append(Ranking(prompt, completions, order))
    return rankings


def ranked_pairs(ranking: Ranking) -> list[tuple[str, str]]:
    """(chosen, rejected) for each of the C(K,2) pairs the ranking orders."""
    best_first = [ranking.completions[j] for j in ranking.order]
    return [(best_first[i], best_first[j]) for i in range(K) for j in range(i + 1, K)]


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def clock() -> tuple[float, int]:
    """(wall seconds, times this process's threads were preempted so far)."""
    return time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def figures(algorithm: str, side: str, steps: int, started: tuple, ended: tuple, amount: int) -> dict:
    """The timed window's figures. Many preemptions a second mean something else was running."""
    from importlib.metadata import version

    import torch
    import transformers

    seconds = ended[0] - started[0]
    return {"algorithm": algorithm, "side": side, "steps": steps, "seconds": round(seconds, 2), "amount": amount,
            "unit": UNIT[algorithm], "rate": round(amount / seconds, 2), "peak_rss_mib": peak_rss_mib(),
            "preempted_per_s": round((ended[1] - started[1]) / seconds, 1),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": version("trl") if side == "trl" else None}  # fmt: skip


# --- our side ------------------------------------------------------------------------------------


def ours(algorithm: str, model: str, steps: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from training.core.config import DPOConfig, PPOConfig, SFTConfig
    from training.core.dpo import train_dpo
    from training.core.generation import format_prompt
    from training.core.loading import load_model
    from training.core.ppo import PPOTrainer
    from training.core.rankings import RankedPrompt
    from training.core.sft import train_sft

    torch.manual_seed(0)
    policy, tokenizer = load_model(model, model_store())
    if chat_prompt(tokenizer, "Hello.") != format_prompt(tokenizer, "Hello."):
        raise SystemExit("chat_prompt no longer formats prompts as training.core.generation.format_prompt does.")
    rankings = build_rankings(tokenizer, (steps + 1) * BATCH_PROMPTS)
    warm, timed = rankings[:BATCH_PROMPTS], rankings[BATCH_PROMPTS:]
    if algorithm == "rloo":
        score = lambda prompts, completions: torch.tensor([reward_of(c) for c in completions])  # noqa: E731
        config = PPOConfig.rloo(batch_prompts=BATCH_PROMPTS, samples_per_prompt=K, max_new_tokens=NEW_TOKENS,
                                temperature=TEMPERATURE, lr=LR["rloo"], kl_coef=KL_BETA, steps=steps)  # fmt: skip
        trainer = PPOTrainer(policy, tokenizer, None, score, config)
        trainer.step([r.prompt for r in warm])
        started = clock()
        for s in range(0, len(timed), BATCH_PROMPTS):
            trainer.step([r.prompt for r in timed[s : s + BATCH_PROMPTS]])
        return figures(algorithm, "ours", steps, started, clock(), len(timed) * K)
    if algorithm == "sft":
        data = [RankedPrompt(r.prompt, [r.completions[r.order[0]]], [[0]]) for r in rankings]
        config = SFTConfig(lr=LR["sft"], epochs=1, patience=0, batch_prompts=BATCH_PROMPTS, max_length=MAX_LENGTH)
        train = train_sft
    else:
        data = [RankedPrompt(r.prompt, r.completions, [[j] for j in r.order]) for r in rankings]
        config = DPOConfig(lr=LR["dpo"], epochs=1, patience=0, batch_prompts=BATCH_PROMPTS, max_length=MAX_LENGTH)
        train = train_dpo
    train(policy, tokenizer, data[:BATCH_PROMPTS], [], config)
    started = clock()
    _, last = train(policy, tokenizer, data[BATCH_PROMPTS:], [], config)
    ended = clock()
    amount = last["answer_tokens"] if algorithm == "sft" else last["pairs"]
    return figures(algorithm, "ours", steps, started, ended, amount)


def model_store() -> Path:
    """Where the project keeps models (webapp.settings.MODEL_STORE's default)."""
    return Path(os.environ.get("MODEL_STORE", ROOT / "var" / "models"))


# --- TRL's side ----------------------------------------------------------------------------------


def trl(algorithm: str, model: str, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer, RLOOConfig, RLOOTrainer, SFTConfig, SFTTrainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[tuple[float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(clock())

    if not Path(model).is_dir():
        raise SystemExit(f"TRL's side loads a folder, not {model!r}: pass --model FOLDER, or run 'all'.")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model)
    policy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    rankings = build_rankings(tokenizer, (steps + 1) * BATCH_PROMPTS)
    common = {"output_dir": str(ROOT / "var" / "bench" / "vs-trl"), "max_steps": steps + 1,
              "gradient_accumulation_steps": 1, "learning_rate": LR[algorithm], "bf16": False,
              "gradient_checkpointing": False, "use_cpu": True, "report_to": "none", "logging_strategy": "no",
              "save_strategy": "no", "disable_tqdm": True, "dataloader_num_workers": 0, "seed": 0}  # fmt: skip
    steps_ended = StepClock()
    if algorithm == "rloo":
        dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": r.prompt}] for r in rankings]})

        def vowel_share(prompts, completions, **kwargs) -> list[float]:
            return [reward_of(c[0]["content"]) for c in completions]  # conversational: one assistant message

        args = RLOOConfig(**common, per_device_train_batch_size=BATCH_PROMPTS * K, num_generations=K,
                          max_completion_length=NEW_TOKENS, temperature=TEMPERATURE, top_p=1.0, top_k=0,
                          beta=KL_BETA, num_iterations=1, disable_dropout=True)  # fmt: skip
        trainer = RLOOTrainer(model=policy, reward_funcs=[vowel_share], args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[steps_ended])  # fmt: skip
        per_step = BATCH_PROMPTS * K
    elif algorithm == "dpo":
        pairs = [(chat_prompt(tokenizer, r.prompt), c, x) for r in rankings for c, x in ranked_pairs(r)]
        dataset = Dataset.from_dict({"prompt": [p for p, _, _ in pairs], "chosen": [c for _, c, _ in pairs],
                                     "rejected": [x for _, _, x in pairs]})  # fmt: skip
        args = DPOConfig(**common, per_device_train_batch_size=BATCH_PROMPTS * len(ranked_pairs(rankings[0])),
                         beta=0.1, max_length=MAX_LENGTH, precompute_ref_log_probs=False)  # fmt: skip
        trainer = DPOTrainer(model=policy, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[steps_ended])  # fmt: skip
        per_step = args.per_device_train_batch_size
    else:
        dataset = Dataset.from_dict({"prompt": [chat_prompt(tokenizer, r.prompt) for r in rankings],
                                     "completion": [r.completions[r.order[0]] for r in rankings]})  # fmt: skip
        args = SFTConfig(**common, per_device_train_batch_size=BATCH_PROMPTS, max_length=MAX_LENGTH,
                         completion_only_loss=True, packing=False)  # fmt: skip
        trainer = SFTTrainer(model=policy, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[steps_ended])  # fmt: skip
        trainer.data_collator = counting(trainer.data_collator)
    trainer.train()
    if len(steps_ended.ends) != steps + 1:
        raise SystemExit(f"TRL ran {len(steps_ended.ends)} steps, not {steps + 1}.")
    amount = sum(trainer.data_collator.answer_tokens[1:]) if algorithm == "sft" else steps * per_step
    return figures(algorithm, "trl", steps, steps_ended.ends[0], steps_ended.ends[-1], amount)


def counting(collate):
    """The collator, counting the answer tokens (labels not -100) of each batch it makes."""

    def collate_counting(examples):
        batch = collate(examples)
        collate_counting.answer_tokens.append(int((batch["labels"] != -100).sum()))
        return batch

    collate_counting.answer_tokens = []
    return collate_counting


# --- driver --------------------------------------------------------------------------------------


def model_folder(reference: str) -> str:
    """A folder both sides can load: the bundled alias is converted (once) into the model store."""
    if Path(reference).is_dir():
        return str(Path(reference).resolve())
    code = "import sys; from pathlib import Path; from training.core.loading import resolve; " \
           "print(resolve(sys.argv[1], Path(sys.argv[2])))"  # fmt: skip
    done = subprocess.run([str(PYTHON["ours"]), "-c", code, reference, str(model_store())], cwd=ROOT, check=True,
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    return str(Path(done.stdout.strip().splitlines()[-1]).resolve())


def in_child(algorithm: str, side: str, model: str, steps: int) -> dict:
    """One side's figures, measured in a fresh interpreter of that side's venv."""
    if not PYTHON[side].exists():
        raise SystemExit(f"No {PYTHON[side]}: set up the {side} venv as the top of {__file__} says.")
    command = [str(PYTHON[side]), __file__, algorithm, "--side", side, "--model", model, "--steps", str(steps),
               "--json"]  # fmt: skip
    print(f"{algorithm} {side} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{algorithm} {side} failed with exit status {done.returncode}")
    result = json.loads(done.stdout.splitlines()[-1])
    print(f"{algorithm} {side}: {result['rate']} {result['unit']} ({result['seconds']} s)", file=sys.stderr)
    return result


def table(model: str, steps: int, results: dict) -> str:
    sft = results["sft"]
    lines = [
        f"model {model}, {steps} timed steps after 1 warm-up, {THREADS} threads, fp32, TRL {sft['trl']['trl']}, "
        f"transformers {sft['ours']['transformers']} (ours) / {sft['trl']['transformers']} (TRL)",
        "algorithm  unit        ours       TRL        ours/TRL  goal   peak RSS MiB ours / TRL  preempted/s ours / TRL",
    ]
    for algorithm, row in results.items():
        ours_, trl_ = row["ours"], row["trl"]
        lines.append(
            f"{algorithm:<9}  {UNIT[algorithm]:<10}  {ours_['rate']:<9}  {trl_['rate']:<9}  {row['ratio']:<8}  "
            f"{GOAL[algorithm]:<5}  {ours_['peak_rss_mib']:>6} / {trl_['peak_rss_mib']:<12}  "
            f"{ours_['preempted_per_s']} / {trl_['preempted_per_s']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=(*ALGORITHMS, "all"))
    parser.add_argument("--side", choices=("ours", "trl"), help="One side's run (not with 'all').")
    parser.add_argument("--model", default=BUNDLED, help=f"Folder or alias (default {BUNDLED}).")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after one warm-up step.")
    parser.add_argument("--json", action="store_true", help="Print only the JSON line.")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.algorithm == "all":
        model = model_folder(args.model)
        if os.getloadavg()[0] > 0.5:
            print(f"Load average {os.getloadavg()[0]:.2f}: something else is running, the figures will be off.",
                  file=sys.stderr)  # fmt: skip
        results = {}
        for algorithm in ALGORITHMS:
            row = {side: in_child(algorithm, side, model, args.steps) for side in ("ours", "trl")}
            row["ratio"] = round(row["ours"]["rate"] / row["trl"]["rate"], 2)
            results[algorithm] = row
        if not args.json:
            print(table(model, args.steps, results))
        print(json.dumps({"model": model, "steps": args.steps, **results}))
        return
    if args.side is None:
        parser.error("--side is needed for one algorithm's run")
    import torch

    torch.set_num_threads(THREADS)
    run = ours if args.side == "ours" else trl
    result = run(args.algorithm, args.model, args.steps)
    if not args.json:
        print(f"{args.algorithm} {args.side}: {result['rate']} {result['unit']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
