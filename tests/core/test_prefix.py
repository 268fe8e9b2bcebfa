import torch

from training.core.config import RewardModelConfig
from training.core.loading import load_model
from training.core.prefix import common_prefix_length, shared_prefix_inputs
from training.core.reward_model import new_reward_model

PAD = 3


def rows_padded(rows: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = torch.tensor(row), 1
    return ids, mask


ROWS = [[1, 40, 41, 42, 50, 51], [1, 40, 41, 42, 60], [1, 40, 41, 43, 70, 71, 72]]  # share 3 first tokens


def test_the_common_prefix_is_found_with_left_or_right_padding_and_capped_by_the_limit():
    for left in (True, False):
        ids, mask = rows_padded(ROWS, left)
        assert common_prefix_length(ids, mask, limit=5) == 3
        assert common_prefix_length(ids, mask, limit=2) == 2
        assert common_prefix_length(ids[:1], mask[:1], limit=5) == 0  # one row: nothing to share


def test_shared_prefix_logits_and_gradients_equal_the_plain_forwards(tiny_folder):
    model, _ = load_model(str(tiny_folder), tiny_folder.parent)
    ids, mask = rows_padded(ROWS, left=True)
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)

    def logits_and_grads(share: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        if share:
            inputs = shared_prefix_inputs(model, ids, mask, keep_last=2, logits_to_keep=1)
            assert inputs["input_ids"].shape[1] == ids.shape[1] - 3
        else:
            inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids}
        logits = model(**inputs, logits_to_keep=2).logits  # (B, 2, V)
        (logits.log_softmax(-1)[..., 7] * mask[:, -2:]).sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    plain, plain_grads = logits_and_grads(share=False)
    shared, shared_grads = logits_and_grads(share=True)
    real = mask[:, -2:].bool()
    assert torch.allclose(shared[real], plain[real], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(shared_grads, plain_grads, strict=True))


def test_reward_scores_and_values_are_the_same_with_the_prefix_shared(tiny_folder):
    rm, _ = new_reward_model(str(tiny_folder), tiny_folder.parent, RewardModelConfig.instructgpt(seed=1))
    for left in (False, True):
        ids, mask = rows_padded(ROWS, left)
        with torch.no_grad():
            alone = torch.stack([rm(torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long))[0] for row in ROWS])
            assert torch.allclose(rm(ids, mask), alone, atol=1e-5)
    ids, mask = rows_padded(ROWS, left=True)
    with torch.no_grad():
        shared = rm.token_values(ids, mask, 2, share_prefix=True)
        assert torch.allclose(shared, rm.token_values(ids, mask, 2), atol=1e-5)
