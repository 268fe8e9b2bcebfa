"""GPU check (issue 19): every training stage of the project's core on one accelerator, in the
worker's dtype, on models built from configs with random weights (nothing is downloaded), and
one JSON line of figures per model.

    bash benchmarks/gpu_check.sh                      # on a GPU host: both configs, bf16
    python benchmarks/gpu_check.py --device cpu --configs tiny --steps 1   # a smoke run anywhere

Needs only torch, transformers, accelerate and peft: `training.core` imports no Django. Per model:
sampling tokens/s (K = 4), reward-model pairs/s (frozen trunk, the project's default), PPO and
RLOO samples/s (the RL step's defaults but `steps`), DPO pairs/s (C(4,2) pairs of each ranking),
peak accelerator memory, and the model FLOP utilisation of the training stages against the chip's
bf16 peak (6 x parameters x trained tokens per second; the 2 x forward-only work of rollouts and
references is left out, so it understates the work done). Random weights rarely emit EOS, so
every completion runs to its full length: the work is fixed.
"""

import argparse
import json
import math
import string
import sys
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.core.config import DPOConfig, PPOConfig, RewardModelConfig, SamplingConfig  # noqa: E402
from training.core.devices import decide, peak_memory_mib  # noqa: E402
from training.core.dpo import train_dpo  # noqa: E402
from training.core.generation import sample  # noqa: E402
from training.core.loading import load_model  # noqa: E402
from training.core.ppo import PPOTrainer  # noqa: E402
from training.core.rankings import RankedPrompt  # noqa: E402
from training.core.reward_model import (  # noqa: E402
    load_reward_model,
    new_reward_model,
    reward_model_scorer,
    save_reward_model,  # noqa: E402
)
from training.core.reward_training import train_reward_model  # noqa: E402

CONFIGS = ROOT / "benchmarks" / "configs"
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1}  # dense, per the vendors' sheets
K = 4
NEW_TOKENS = 64
PROMPT_TOKENS = 128
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def synthetic_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """One token a character, padded with added tokens up to the model's vocabulary, so every id a
    random model samples decodes and encodes back to one token."""
    special = ["<unk>", "<s>", "</s>", "<pad>"]
    chars = list(string.ascii_letters + string.digits + string.punctuation + " \n")
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(special + chars)}, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(special)
    backend.add_tokens([f"<t{i}>" for i in range(len(special) + len(chars), vocab_size)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(config_name: str, folder: Path) -> tuple[Path, int]:
    """A random-weight model of the named config (benchmarks/configs/NAME.json) saved in `folder`;
    returns the folder and the parameter count."""
    config = AutoConfig.from_pretrained(CONFIGS / f"{config_name}.json")
    config.bos_token_id, config.eos_token_id, config.pad_token_id = 1, 2, 3
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 2, 3
    model.save_pretrained(folder)
    synthetic_tokenizer(config.vocab_size).save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


def prompts(n: int) -> list[str]:
    return [(f"Question {i}: " + "tell me about the weather " * 20)[:PROMPT_TOKENS] for i in range(n)]


def rankings(n: int) -> list[RankedPrompt]:
    answers = [("answer " * 40)[: NEW_TOKENS - j * 8] for j in range(K)]
    return [RankedPrompt(p, answers, [[j] for j in range(K)]) for p in prompts(n)]


def now(placement) -> float:
    """The clock, once the accelerator has finished what it was given."""
    if placement.device.type == "cuda":
        torch.cuda.synchronize(placement.device)
    return time.perf_counter()


def check(config_name: str, placement, steps: int, workdir: Path) -> dict:
    folder, params = build(config_name, workdir / config_name)
    store = workdir
    figures: dict = {"config": config_name, "parameters": params, **placement.describe()}
    trained_tokens_per_s = {}
    placement.reset_peak_memory()

    # sampling: K completions per prompt, frozen in the compute dtype
    policy, tokenizer = load_model(str(folder), store, placement, trainable=False)
    batch = prompts(8 * steps)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=NEW_TOKENS)
    sample(policy, tokenizer, batch[:2], K, sampling)  # warm-up
    started = now(placement)
    groups = sample(policy, tokenizer, batch, K, sampling)
    seconds = now(placement) - started
    figures["sampling_tokens_per_s"] = round(sum(s.token_count for g in groups for s in g) / seconds, 1)
    del policy

    # reward model: the project's default recipe (frozen trunk, heads read a third of the way up)
    rm_config = RewardModelConfig(max_length=PROMPT_TOKENS + NEW_TOKENS + 16)
    rm, rm_tokenizer = new_reward_model(str(folder), store, rm_config, placement)
    data = rankings(rm_config.batch_prompts * 2 * steps)
    started = now(placement)
    train_reward_model(rm, rm_tokenizer, data, rm_config, placement=placement)
    seconds = now(placement) - started
    epochs = max(rm_config.epochs, math.ceil(rm_config.min_steps / math.ceil(len(data) / rm_config.batch_prompts)))
    figures["rm_pairs_per_s"] = round(len(data) * math.comb(K, 2) * epochs / seconds, 1)
    save_reward_model(rm, rm_tokenizer, workdir / "rm")
    del rm
    scorer_model, _ = load_reward_model(workdir / "rm", placement)
    scorer = reward_model_scorer(scorer_model, rm_tokenizer, rm_config.max_length)

    # RL steps: RLOO (the default) and PPO with its critic
    for name, config in (("rloo", PPOConfig.rloo(steps=steps, max_new_tokens=NEW_TOKENS)),
                         ("ppo", PPOConfig(steps=steps, max_new_tokens=NEW_TOKENS))):  # fmt: skip
        policy, tokenizer = load_model(str(folder), store, placement)
        critic = load_reward_model(workdir / "rm", placement, "full")[0] if name == "ppo" else None
        trainer = PPOTrainer(policy, tokenizer, critic, scorer, config, placement=placement)
        per_step = config.batch_prompts
        trainer.step(batch[:per_step])  # warm-up
        started = now(placement)
        logged = [trainer.step(batch[s * per_step : (s + 1) * per_step]) for s in range(steps)]
        seconds = now(placement) - started
        samples = sum(f["samples"] for f in logged)
        figures[f"{name}_samples_per_s"] = round(samples / seconds, 2)
        trained_tokens = sum(f["samples"] * (PROMPT_TOKENS + f["mean_length"]) for f in logged) * config.ppo_epochs
        trained_tokens_per_s[name] = trained_tokens / seconds
        del trainer, policy, critic

    # DPO: C(K,2) pairs of each ranking, each completion forwarded once
    policy, tokenizer = load_model(str(folder), store, placement)
    dpo_config = DPOConfig(epochs=1, patience=0, batch_prompts=4, max_length=PROMPT_TOKENS + NEW_TOKENS + 16)
    data = rankings(dpo_config.batch_prompts * steps)
    started = now(placement)
    _, last = train_dpo(policy, tokenizer, data, [], dpo_config, placement=placement)
    seconds = now(placement) - started
    figures["dpo_pairs_per_s"] = round(last["pairs"] / seconds, 2)
    trained_tokens_per_s["dpo"] = len(data) * K * (PROMPT_TOKENS + NEW_TOKENS) / seconds
    del policy

    figures["peak_memory_mib"] = peak_memory_mib(placement.device)  # the CPU's: the process's peak RSS
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in (figures.get("accelerator") or "")), None)
    figures["bf16_peak_tflops"] = peak
    for name, rate in trained_tokens_per_s.items():
        achieved = 6 * params * rate / 1e12
        figures[f"{name}_train_tflops"] = round(achieved, 2)
        figures[f"{name}_mfu"] = round(achieved / peak, 4) if peak else None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="smollm2-135m,smollm2-1.7b", help="Names in benchmarks/configs/.")
    parser.add_argument("--device", default="auto", help="As TRAINING_DEVICE.")
    parser.add_argument("--dtype", default="auto", help="As TRAINING_DTYPE.")
    parser.add_argument("--steps", type=int, default=3, help="Timed steps per stage.")
    args = parser.parse_args()
    placement = decide(args.device, args.dtype)
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.configs.split(","):
            started = time.perf_counter()
            figures = check(name.strip(), placement, args.steps, Path(workdir))
            figures["seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
