"""Where a worker's models live and the precision they compute in: one decision per worker, from
TRAINING_DEVICE and TRAINING_DTYPE, that every stage follows.

Frozen models (the sampling policy, the KL reference, the scoring reward model, a frozen RM trunk)
are held in the compute dtype. Trained weights stay in float32 and their forward runs under
autocast to the compute dtype: an AdamW step of lr 1e-5 on a bfloat16 weight (8 bits of mantissa)
rounds away, so a bf16 master copy would not learn.
"""

import resource
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class PlacementError(ValueError):
    """The worker was asked for a device or dtype it does not have."""


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    """The compute dtype: frozen weights are held in it, trained ones autocast to it."""

    def weights_dtype(self, trainable: bool) -> torch.dtype:
        return torch.float32 if trainable else self.dtype

    def frozen(self, model: nn.Module) -> nn.Module:
        """`model` on the device in the compute dtype, without gradients, in eval mode."""
        return model.to(self.device, self.dtype).requires_grad_(False).eval()

    def autocast(self) -> AbstractContextManager:
        """The forward of float32 weights in the compute dtype; nothing to do in float32."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> dict:
        """What a run row records: device, dtype and the accelerator's name (None on the CPU)."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None
        return {"device": str(self.device), "dtype": dtype_name(self.dtype), "accelerator": name}

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)


CPU = Placement(torch.device("cpu"), torch.float32)


def peak_memory_mib(device: torch.device | str) -> float:
    """Peak accelerator memory allocated on `device` since its last reset; on the CPU the process's
    peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def decide(device: str = "auto", dtype: str = "auto", processes: int = 1, rank: int = 0) -> Placement:
    """The placement for TRAINING_DEVICE and TRAINING_DTYPE, of local rank `rank` of `processes`.

    device: "auto" (the first GPU when there is one, else the CPU), "cpu", "cuda" or "cuda:N".
    dtype: "auto" (bfloat16 on a GPU that supports it, else float32), or one of DTYPES.
    Several processes on GPUs take one each, cuda:0 to cuda:N-1 of those visible (choose them with
    CUDA_VISIBLE_DEVICES). Raises PlacementError saying what is missing.
    """
    device = (device or "auto").strip().lower()
    if device == "auto":
        chosen = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    else:
        try:
            chosen = torch.device(device)
        except RuntimeError:
            raise PlacementError(
                f'TRAINING_DEVICE must be "auto", "cpu", "cuda" or "cuda:N", not {device!r}.'
            ) from None
        if chosen.type not in ("cpu", "cuda"):
            raise PlacementError(f'TRAINING_DEVICE must be "auto", "cpu", "cuda" or "cuda:N", not {device!r}.')
    if chosen.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not visible:
            raise PlacementError(f"TRAINING_DEVICE is {device!r}, but this worker sees no CUDA GPU "
                                 f"(torch {torch.__version__}); set it to auto or cpu.")  # fmt: skip
        if processes > 1:
            if chosen.index is not None and device != "auto":
                raise PlacementError(f"TRAINING_DEVICE is {device!r}, but {processes} training processes take "
                                     "a GPU each: set it to auto or cuda, and choose the GPUs with "
                                     "CUDA_VISIBLE_DEVICES.")  # fmt: skip
            if processes > visible:
                raise PlacementError(f"TRAINING_PROCESSES is {processes}, but this worker sees {visible} GPU(s): "
                                     "one process a GPU.")  # fmt: skip
            chosen = torch.device("cuda", rank)
        index = 0 if chosen.index is None else chosen.index
        if index >= visible:
            raise PlacementError(f"TRAINING_DEVICE is {device!r}, but this worker sees {visible} GPU(s), "
                                 f"cuda:0 to cuda:{visible - 1}.")  # fmt: skip
        chosen = torch.device("cuda", index)
    dtype = (dtype or "auto").strip().lower()
    if dtype == "auto":
        gpu_bf16 = chosen.type == "cuda" and torch.cuda.is_bf16_supported()
        return Placement(chosen, torch.bfloat16 if gpu_bf16 else torch.float32)
    if dtype not in DTYPES:
        raise PlacementError(f"TRAINING_DTYPE must be auto or one of {', '.join(DTYPES)}, not {dtype!r}.")
    if dtype == "float16" and chosen.type == "cpu":
        raise PlacementError("TRAINING_DTYPE float16 needs a GPU; on the CPU use bfloat16 or float32.")
    return Placement(chosen, DTYPES[dtype])
