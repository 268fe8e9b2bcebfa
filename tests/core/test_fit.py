"""The learning-rate schedule shared by the reward model, SFT and DPO."""

import math

import pytest

from training.core.fit import FINAL_LR_SHARE, lr_scale


def test_the_learning_rate_warms_up_linearly_then_falls_along_a_cosine_to_its_final_share():
    scales = [lr_scale(step, 10, 0.2, 0.3) for step in range(10)]  # 2 warm-up steps, then 8 of decay
    assert scales[:3] == [0.5, 1.0, 1.0]
    assert scales[6] == pytest.approx(0.3 + 0.35)  # half way down: cos(π/2) = 0
    assert scales[9] == pytest.approx(0.3 + 0.35 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(later < earlier for earlier, later in zip(scales[2:], scales[3:], strict=False))


@pytest.mark.parametrize("total, warmup_ratio", [(9, 0.3), (40, 0.1), (7, 0.0)])
def test_sft_and_dpo_decay_to_a_tenth_as_their_own_schedule_did_to_the_last_bit(total, warmup_ratio):
    warmup = max(1, round(total * warmup_ratio))
    for step in range(warmup, total):
        progress = (step - warmup) / max(1, total - warmup)
        assert lr_scale(step, total, warmup_ratio, FINAL_LR_SHARE) == 0.1 + 0.45 * (1 + math.cos(math.pi * progress))
