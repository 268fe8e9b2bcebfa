"""The worker's one device-and-dtype decision (TRAINING_DEVICE, TRAINING_DTYPE)."""

import pytest
import torch
from torch import nn

from training.core.devices import CPU, Placement, PlacementError, decide

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a worker without a GPU decides")


@no_gpu
def test_auto_is_the_cpu_in_float32_without_a_gpu():
    assert decide("auto", "auto") == decide("", "") == CPU
    assert CPU.describe() == {"device": "cpu", "dtype": "float32", "accelerator": None}


def test_an_explicit_cpu_in_bfloat16_is_honoured():
    placement = decide("CPU", "bfloat16")
    assert (placement.device, placement.dtype) == (torch.device("cpu"), torch.bfloat16)


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_gpu_asked_for_and_absent_is_refused_saying_so(device):
    with pytest.raises(PlacementError, match=f"TRAINING_DEVICE is '{device}', but this worker sees no CUDA GPU"):
        decide(device, "auto")


@pytest.mark.parametrize(
    ("device", "dtype", "message"),
    [
        ("tpu", "auto", 'TRAINING_DEVICE must be "auto", "cpu", "cuda" or "cuda:N", not \'tpu\''),
        ("gpu:0", "auto", "not 'gpu:0'"),
        ("cpu", "half", "TRAINING_DTYPE must be auto or one of float32, bfloat16, float16, not 'half'"),
        ("cpu", "float16", "float16 needs a GPU"),
    ],
)
def test_settings_that_name_nothing_real_are_refused(device, dtype, message):
    with pytest.raises(PlacementError, match=message):
        decide(device, dtype)


def test_frozen_models_hold_the_compute_dtype_and_trained_ones_autocast_to_it():
    placement = Placement(torch.device("cpu"), torch.bfloat16)
    frozen = placement.frozen(nn.Linear(4, 4))
    assert frozen.weight.dtype == torch.bfloat16 and not frozen.weight.requires_grad and not frozen.training
    trained = nn.Linear(4, 4)
    assert placement.weights_dtype(trainable=True) == torch.float32
    with placement.autocast():
        out = trained(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and trained.weight.dtype == torch.float32
    with CPU.autocast():
        assert trained(torch.randn(2, 4)).dtype == torch.float32


def test_why_trained_weights_stay_in_float32_a_bfloat16_weight_does_not_move_at_lr_1e_5():
    """An AdamW step moves each weight by about lr; bfloat16's 8-bit mantissa rounds 1 - 1e-5 to 1."""
    for dtype, moves in ((torch.float32, True), (torch.bfloat16, False)):
        weight = nn.Parameter(torch.ones(8, dtype=dtype))
        optimiser = torch.optim.AdamW([weight], lr=1e-5, weight_decay=0.0)
        weight.sum().backward()
        optimiser.step()
        assert bool((weight != 1).any()) == moves, dtype


@pytest.fixture
def four_gpus(monkeypatch):
    """A worker that sees four GPUs (none is touched: decide only counts them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_several_training_processes_take_a_gpu_each(four_gpus, device):
    assert [decide(device, "auto", processes=4, rank=r).device for r in range(4)] == [
        torch.device("cuda", r) for r in range(4)
    ]
    assert decide(device, "auto", processes=4, rank=2).dtype == torch.bfloat16


def test_several_training_processes_refuse_one_named_gpu_or_more_processes_than_gpus(four_gpus):
    with pytest.raises(PlacementError, match="take a GPU each: set it to auto or cuda.*CUDA_VISIBLE_DEVICES"):
        decide("cuda:1", "auto", processes=2, rank=0)
    with pytest.raises(PlacementError, match="TRAINING_PROCESSES is 8, but this worker sees 4 GPU"):
        decide("cuda", "auto", processes=8, rank=0)


def test_several_training_processes_on_the_cpu_share_it():
    assert decide("cpu", "float32", processes=2, rank=1) == CPU
