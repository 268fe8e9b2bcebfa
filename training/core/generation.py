"""Batched sampling of K completions per prompt: one `generate` call per chunk of left-padded
prompts, with the KV cache, sized to a token budget."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.conversations import Chat, as_dicts, plain_transcript
from training.core.config import PPOConfig, SamplingConfig
from training.core.packed import packed_linears

Progress = Callable[[int, int], None]  # (prompts done, prompts in all)


@dataclass(frozen=True)
class Sample:
    text: str
    token_count: int
    """Generated tokens before EOS (EOS itself not counted)."""
    finish_reason: str
    """'eos' when the model ended it, 'length' when max_new_tokens cut it."""


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Chat) -> str:
    """The prompt as the model expects it: through its chat template (a string as one user turn, a
    conversation whole), the assistant's turn opened; without a template, plain text."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(as_dicts(prompt), tokenize=False, add_generation_prompt=True)
    return plain_transcript(prompt)


def prompt_length(tokenizer: PreTrainedTokenizerBase, prompt: Chat) -> int:
    """The prompt's tokens as the model reads them (chat template and special tokens included)."""
    text = format_prompt(tokenizer, prompt)
    return len(tokenizer(text, add_special_tokens=not tokenizer.chat_template)["input_ids"])


def context_budget(model: PreTrainedModel, config: SamplingConfig | PPOConfig) -> int:
    """The most prompt tokens that leave room for max_new_tokens in the model's context."""
    return model.config.max_position_embeddings - config.max_new_tokens


def fit_to_context(tokenizer: PreTrainedTokenizerBase, prompt: Chat, budget: int) -> tuple[Chat, int] | None:
    """(the prompt, 0) when it fits `budget` tokens; else a conversation with its oldest exchanges (a
    user message and the reply to it) left out until it fits, and how many messages were left out. The
    system message and the last user message are always kept: None when even they do not fit."""
    if prompt_length(tokenizer, prompt) <= budget:
        return prompt, 0
    if isinstance(prompt, str):
        return None
    system = prompt[:1] if prompt[0].role == "system" else ()
    turns = prompt[len(system) :]
    for cut in range(2, len(turns), 2):
        shorter = (*system, *turns[cut:])
        if prompt_length(tokenizer, shorter) <= budget:
            return shorter, cut
    return None


def fit_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[Chat], budget: int) -> list[Chat]:
    """The prompts as a model with `budget` prompt tokens can read them (`fit_to_context`); one that
    cannot fit at all is left out."""
    fitted = (fit_to_context(tokenizer, prompt, budget) for prompt in prompts)
    return [fit[0] for fit in fitted if fit is not None]


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [*ids, tokenizer.eos_token_id] if i is not None})


def generate_kwargs(config: SamplingConfig, tokenizer: PreTrainedTokenizerBase, stop: list[int]) -> dict:
    """The `generate` arguments that make it sample as `config` says, stopping at any of `stop`."""
    return {
        "do_sample": True,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "max_new_tokens": config.max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": stop,
    }


def _chunks(lengths: list[int], k: int, config: SamplingConfig) -> list[list[int]]:
    """Prompt indices grouped so that each chunk's padded batch fits the token budget."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)  # similar lengths pad little
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = max(lengths[i] for i in [*current, index])
        if current and (len(current) + 1) * k * (longest + config.max_new_tokens) > config.max_batch_tokens:
            chunks.append(current)
            current = []
        current.append(index)
    return [*chunks, current] if current else chunks


def _decode(new_tokens: torch.Tensor, stop: list[int], tokenizer: PreTrainedTokenizerBase) -> Sample:
    # new_tokens: (T,) generated ids, padded after EOS
    is_stop = torch.isin(new_tokens, torch.tensor(stop, device=new_tokens.device))
    if is_stop.any():
        end = int(is_stop.nonzero()[0, 0])
        kept, reason = new_tokens[:end], "eos"
    else:
        kept, reason = new_tokens, "length"
    return Sample(tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept), reason)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Chat],
    k: int,
    config: SamplingConfig,
    progress: Progress | None = None,
) -> list[list[Sample]]:
    """K samples for each prompt, in the prompts' order. The tokenizer must pad on the left."""
    assert tokenizer.padding_side == "left", "generation needs left padding"
    texts = [format_prompt(tokenizer, p) for p in prompts]
    add_special = not tokenizer.chat_template  # a chat template already holds its special tokens
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=add_special)["input_ids"]]
    stop = eos_ids(model, tokenizer)
    results: list[list[Sample]] = [[] for _ in prompts]
    done = 0
    with packed_linears(model, 64):  # the weights do not change while sampling
        for chunk_index, chunk in enumerate(_chunks(lengths, k, config)):
            batch = tokenizer(
                [texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=add_special
            ).to(model.device)
            torch.manual_seed(config.seed + chunk_index)
            output = model.generate(**batch, **generate_kwargs(config, tokenizer, stop), num_return_sequences=k)
            # output: (len(chunk) * k, P + T), rows grouped by prompt: k rows for chunk[0], then chunk[1], ...
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for row, tokens in enumerate(new_tokens):
                results[chunk[row // k]].append(_decode(tokens, stop, tokenizer))
            done += len(chunk)
            if progress:
                progress(done, len(prompts))
    return results


def sample_distinct(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Chat],
    k: int,
    config: SamplingConfig,
    progress: Progress | None = None,
    rounds: int = 3,
    at_least: int | None = None,
) -> list[list[Sample] | None]:
    """Like `sample`, but the K texts of each prompt differ: duplicates are resampled up to
    `rounds` times; a prompt still short of K (or `at_least`) distinct texts gets None (no task is
    made of it). With `at_least`, a prompt may get between that many and K."""
    results = sample(model, tokenizer, prompts, k, config, progress)
    kept = [_distinct(samples) for samples in results]
    for round_ in range(1, rounds + 1):
        short = [i for i, samples in enumerate(kept) if len(samples) < k]
        if not short:
            break
        retry = SamplingConfig(**{**config.__dict__, "seed": config.seed + 1000 * round_})
        extra = sample(model, tokenizer, [prompts[i] for i in short], k, retry)
        for i, more in zip(short, extra, strict=True):
            kept[i] = _distinct(kept[i] + more)[:k]
    return [samples[:k] if len(samples) >= (at_least or k) else None for samples in kept]


def _distinct(samples: list[Sample]) -> list[Sample]:
    seen: set[str] = set()
    unique = []
    for s in samples:
        key = " ".join(s.text.split()).casefold()
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique
