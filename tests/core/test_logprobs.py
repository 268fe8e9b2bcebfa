"""Completion log-probs after a shared prompt forward, as a plain forward of each gives them."""

import pytest
import torch

from training.core.data import collate
from training.core.generation import format_prompt
from training.core.logprobs import completion_token_logprobs, sequence_logprobs
from training.core.losses import sft_loss
from training.core.rankings import RankedPrompt


def full_sequence_answer_logprobs(model, tokenizer, prompt: str, answer: str) -> tuple[torch.Tensor, int]:
    """The answer's tokens (and EOS) log-probs from one plain forward of prompt + answer, no cache."""
    prompt_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + answer_ids])
    logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)  # position t predicts t + 1
    targets = ids[0, 1:]
    picked = logp.gather(-1, targets[:, None]).squeeze(-1)
    return picked[len(prompt_ids) - 1 :], len(answer_ids)


SHARED_PROMPT = [RankedPrompt("What is 2 + 2?", ["Four.", "It is 4, I think"], [[0], [1]]),
                 RankedPrompt("Hi", ["Hello!"], [[0]])]  # fmt: skip
ONE_ANSWER_EACH = [RankedPrompt("What is 2 + 2?", ["It is 4, I think"], [[0]]),
                   RankedPrompt("Hi", ["Hello!"], [[0]])]  # fmt: skip


@pytest.mark.parametrize("items", [SHARED_PROMPT, ONE_ANSWER_EACH], ids=["prompt cache shared", "one forward"])
def test_completion_log_probs_are_those_of_the_answer_tokens_only_as_a_plain_forward_gives(policy, items):
    model, tokenizer = policy
    batch = collate(items, tokenizer, 512, "drop")
    with torch.no_grad():
        got = completion_token_logprobs(model, batch)  # (N, C)
        for row, (prompt, answer) in enumerate([(p.prompt, c) for p in items for c in p.completions]):
            expected, tokens = full_sequence_answer_logprobs(model, tokenizer, prompt, answer)
            assert int(batch.completion_mask[row].sum()) == tokens  # the answer and its EOS: no prompt token
            assert torch.allclose(got[row, :tokens], expected, atol=1e-4)
            assert (got[row, tokens:] == 0).all()  # padding counts nothing
    loss = sft_loss(got, batch.completion_mask)
    assert float(loss) == pytest.approx(float(-got.sum() / batch.completion_mask.sum()))


def test_sequence_log_probs_sum_the_token_log_probs(policy):
    model, tokenizer = policy
    items = [RankedPrompt("Hi", ["Hello", "Hey there"], [[0], [1]])]
    with torch.no_grad():
        tokens = completion_token_logprobs(model, collate(items, tokenizer, 512, "drop"))
    assert torch.allclose(sequence_logprobs(model, tokenizer, items, 1, 512), tokens.sum(dim=1), atol=1e-5)
