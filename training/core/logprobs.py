"""Log-probs of completions after their prompt, for SFT and DPO: each prompt forwarded once and its
keys and values shared by its completions."""

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.core.data import RewardBatch, collate
from training.core.devices import CPU, Placement
from training.core.rankings import RankedPrompt
from training.core.recompute import is_recomputed


def completion_token_logprobs(model: PreTrainedModel, batch: RewardBatch) -> torch.Tensor:
    """Log-prob of each completion token (its EOS included) after its prompt; 0 on padding.

    The prompts (G, P) are forwarded once and their cache copied to their completions (N, C): the
    prompt's last position predicts a completion's first token, completion token t predicts t + 1.
    A batch of one completion per prompt (SFT's), or a model whose layers are recomputed in the
    backward (a cache cannot be), forwards each prompt and completion together instead.
    -> (N, C)
    """
    prompt_positions = (batch.prompt_mask.cumsum(dim=1) - 1).clamp(min=0)  # (G, P)
    one_each = torch.equal(batch.group, torch.arange(len(batch.prompt_ids), device=batch.group.device))
    if one_each or (torch.is_grad_enabled() and is_recomputed(model)):
        return _joined_logprobs(model, batch, prompt_positions)
    prompt = model(
        input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=prompt_positions,
        use_cache=True, logits_to_keep=1,
    )  # fmt: skip
    first = prompt.logits[:, -1][batch.group]  # (N, V): left padding puts every prompt's end last
    cache = prompt.past_key_values
    cache.batch_select_indices(batch.group)  # (G, ...) -> (N, ...)
    prompt_lengths = batch.prompt_mask.sum(dim=1)[batch.group]  # (N,)
    inputs = batch.completion_ids[:, :-1]  # (N, C - 1): the last token predicts nothing
    steps = torch.arange(inputs.shape[1], device=prompt_lengths.device)  # (C - 1,)
    rest = model(
        input_ids=inputs,
        attention_mask=torch.cat([batch.prompt_mask[batch.group], batch.completion_mask[:, :-1]], dim=1),
        position_ids=prompt_lengths[:, None] + steps,
        past_key_values=cache,
    ).logits  # (N, C - 1, V)
    return _picked(torch.cat([first[:, None], rest], dim=1), batch)


def _joined_logprobs(model: PreTrainedModel, batch: RewardBatch, prompt_positions: torch.Tensor):
    """Each completion after its prompt row: [prompt | completion] in one forward, the logits kept
    only where they predict a completion token (the prompt's last position onwards). -> (N, C)"""
    group = batch.group
    steps = torch.arange(batch.completion_ids.shape[1] - 1, device=group.device)  # (C - 1,)
    logits = model(
        input_ids=torch.cat([batch.prompt_ids[group], batch.completion_ids[:, :-1]], dim=1),  # (N, P + C - 1)
        attention_mask=torch.cat([batch.prompt_mask[group], batch.completion_mask[:, :-1]], dim=1),
        position_ids=torch.cat(
            [prompt_positions[group], batch.prompt_mask[group].sum(dim=1, keepdim=True) + steps], dim=1
        ),  # fmt: skip
        logits_to_keep=batch.completion_ids.shape[1],
    ).logits  # (N, C, V)
    return _picked(logits, batch)


def _picked(logits: torch.Tensor, batch: RewardBatch) -> torch.Tensor:
    """Log-softmax at each completion token, 0 on padding. (N, C, V) -> (N, C)"""
    logits = logits.float()
    picked = logits.gather(-1, batch.completion_ids[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)  # (N, C)
    return picked * batch.completion_mask


@torch.no_grad()
def sequence_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: list[RankedPrompt], batch_prompts: int,
    max_length: int, placement: Placement = CPU,
) -> torch.Tensor:  # fmt: skip
    """Summed log-prob of every completion of `data`, laid end to end, a batch of prompts at a time
    (a DPO reference's figures, computed once). -> (N,)"""
    model.eval()
    device = next(model.parameters()).device
    with placement.autocast():
        out = [
            completion_token_logprobs(model, collate(data[s : s + batch_prompts], tokenizer, max_length, "drop")
                                      .to(device)).sum(dim=1).float().cpu()
            for s in range(0, len(data), batch_prompts)
        ]  # fmt: skip
    return torch.cat(out) if out else torch.zeros(0)
