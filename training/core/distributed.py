"""Several training processes on one run (`accelerate launch`, one process a GPU): data parallelism
for the reward-model, SFT and DPO loops, whose forwards (shared prompt caches, frozen-trunk
features) do not fit DDP's one-forward-one-backward wrapper.

Every rank holds the same weights and walks the same shuffled order; each step, a rank takes its
slice of the batch (`shard`), and after the backward the gradients are combined, weighted by each
rank's share of the batch (`combine_gradients`), so that the step is the one a single process would
take on the whole batch. The RL trainer uses accelerate's DDP instead (one forward per backward).
Only rank 0 writes: progress, metrics, checkpoints, database rows (training.runs).
"""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


def launched_processes() -> int:
    """How many processes the launcher started for this run (WORLD_SIZE), 1 when run alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def join(device: torch.device, timeout_minutes: int = 30) -> None:
    """Joins the launcher's process group (NCCL between GPUs, gloo on the CPU); nothing to do for
    a process run alone, or one that has joined already."""
    if launched_processes() > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))


@dataclass(frozen=True)
class Ranks:
    index: int = 0
    count: int = 1

    @property
    def main(self) -> bool:
        return self.index == 0

    def shard(self, items: list) -> list:
        """This rank's slice of a batch: every `count`-th item from its index (empty when the batch
        has fewer items than ranks)."""
        return items[self.index :: self.count]

    def broadcast_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """Rank 0's values into every rank's `params`: fresh heads and LoRA adapters start alike."""
        if self.count > 1:
            with torch.no_grad():
                for p in params:
                    dist.broadcast(p.data, src=0)

    def combine_gradients(self, params: list[torch.nn.Parameter], share: float) -> None:
        """Each parameter's gradient becomes Σ_r share_r·grad_r / Σ_r share_r over the ranks, where
        grad_r is the gradient of rank r's mean loss over its `share` (items, tokens) of the batch:
        the gradient of the whole batch's mean. A rank with no items passes share 0."""
        if self.count == 1:
            return
        total = torch.tensor([float(share)], device=_device())
        dist.all_reduce(total)
        for bucket in _buckets(params):  # a few all-reduces a step, each of at most BUCKET_NUMEL floats
            flat = torch.cat([_grad(p).reshape(-1).float() for p in bucket]) * share
            dist.all_reduce(flat)
            flat /= total.to(flat.device).clamp(min=1e-12)
            offset = 0
            for p in bucket:
                p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
                offset += p.numel()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of `values` over the ranks (counts, weighted figures)."""
        if self.count == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def weighted_mean(self, value: float, weight: float) -> float:
        """Σ weight_r·value_r / Σ weight_r over the ranks: a batch figure of the whole batch."""
        total, weights = self.sum([value * weight, weight])
        return total / weights if weights else value

    def mean(self, figures: dict) -> dict:
        """`figures` with every float averaged over the ranks (the same keys on every rank)."""
        keys = sorted(k for k, v in figures.items() if isinstance(v, float))
        if self.count == 1 or not keys:
            return dict(figures)
        sums = self.sum([figures[k] for k in keys])
        return {**figures, **{k: s / self.count for k, s in zip(keys, sums, strict=True)}}

    def agree(self, value):
        """Rank 0's `value` on every rank (a decision all must take alike: early stopping)."""
        if self.count == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=_device())
        return box[0]


SINGLE = Ranks()


def current() -> Ranks:
    """This process's place among the run's processes; SINGLE when there is no process group."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return SINGLE


BUCKET_NUMEL = 2**26  # 256 MiB of float32 gradients in flight at a time


def _buckets(params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    out: list[list[torch.nn.Parameter]] = [[]]
    size = 0
    for p in params:
        if out[-1] and size + p.numel() > BUCKET_NUMEL:
            out.append([])
            size = 0
        out[-1].append(p)
        size += p.numel()
    return out


def _grad(p: torch.nn.Parameter) -> torch.Tensor:
    return p.grad if p.grad is not None else torch.zeros_like(p)


def _device() -> torch.device:
    """Where NCCL wants collective tensors: the rank's GPU; gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
