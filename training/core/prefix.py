"""Rows that begin with the same tokens (a chat template's system turn, say) forward those tokens
once and share their keys and values. The result is the same up to float rounding; the saving is
that share of every forward and backward over the batch."""

import torch
from torch import nn


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, limit: int) -> int:
    """How many first real tokens (at most `limit`) every row has in common; rows may be padded on
    the left or the right. (B, L), (B, L) -> int"""
    if limit <= 0 or input_ids.shape[0] < 2:
        return 0
    first = attention_mask.argmax(dim=1)  # (B,) column of each row's first real token
    columns = (first[:, None] + torch.arange(limit, device=first.device)).clamp(max=input_ids.shape[1] - 1)
    starts = input_ids.gather(1, columns)  # (B, limit)
    same = (starts == starts[:1]).all(dim=0).long()  # (limit,)
    return int(same.cumprod(dim=0).sum())


def shared_prefix_inputs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep_last: int | None, **prefix_kwargs
) -> dict:
    """Keyword arguments for `model` (a transformers model) that give the same outputs as
    `model(input_ids, attention_mask, position_ids)` over the last L - S columns. S is the length of
    the rows' common start, taken only from real tokens before the last `keep_last` columns (whose
    outputs the caller reads); None shares nothing. The prefix is forwarded once here, with
    gradients when they are on, and its cache repeated for every row.

    input_ids, attention_mask: (B, L) -> outputs of the returned call cover (B, L - S)
    """
    limit = 0 if keep_last is None else int(attention_mask[:, : input_ids.shape[1] - keep_last].sum(dim=1).min())
    shared = common_prefix_length(input_ids, attention_mask, limit)
    if shared == 0:
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # (B, L): left padding too
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
    rows, width = input_ids.shape[0], input_ids.shape[1] - shared
    first = attention_mask.argmax(dim=1, keepdim=True)  # (B, 1)
    columns = torch.arange(width, device=input_ids.device).expand(rows, width)  # (B, L - S)
    columns = torch.where(columns < first, columns, columns + shared)  # skip each row's first S real tokens
    rest_mask = attention_mask.gather(1, columns)  # (B, L - S)
    prefix = input_ids[:1].gather(1, first[:1] + torch.arange(shared, device=input_ids.device))  # (1, S)
    cache = model(input_ids=prefix, use_cache=True, **prefix_kwargs).past_key_values
    cache.batch_repeat_interleave(rows)  # (1, ...) -> (B, ...)
    return {
        "input_ids": input_ids.gather(1, columns),
        "attention_mask": torch.cat([attention_mask.new_ones(rows, shared), rest_mask], dim=1),  # (B, L)
        "position_ids": shared + (rest_mask.cumsum(dim=1) - 1).clamp(min=0),  # (B, L - S)
        "past_key_values": cache,
    }
