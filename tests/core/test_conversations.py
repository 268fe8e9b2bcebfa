"""A conversation through the model steps: every one sees exactly the chat template's tokens for the
whole conversation, SFT's loss covers the final assistant turn only, the shared-prompt path gives a
plain forward's log-probs, and a conversation too long for the context loses its oldest turns."""

import pytest
import torch

from labeling.conversations import Message, as_dicts
from training.core.config import RewardModelConfig, SamplingConfig
from training.core.data import collate, encode_parts
from training.core.generation import fit_prompts, fit_to_context, format_prompt, prompt_length, sample
from training.core.logprobs import completion_token_logprobs
from training.core.rankings import RankedPrompt
from training.core.reward_model import new_reward_model

CHAT = (
    Message("system", "Answer briefly."),
    Message("user", "Name a colour."),
    Message("assistant", "Red."),
    Message("user", "Another one?"),
)
REPLIES = ["Blue.", "Green, and also yellow."]


def template_ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_prompt_is_the_chat_templates_text_of_the_whole_conversation(tiny):
    _, tokenizer = tiny
    expected = tokenizer.apply_chat_template(as_dicts(CHAT), tokenize=False, add_generation_prompt=True)
    assert format_prompt(tokenizer, CHAT) == expected
    assert expected.count("<s>") == 5 and expected.endswith("<s>assistant: ")
    assert format_prompt(tokenizer, "Hi") == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )  # a single-turn prompt is the one-message conversation it always was


@pytest.mark.parametrize("reply", REPLIES)
def test_reward_model_dpo_and_sft_see_the_templates_tokens_of_conversation_and_reply(tiny, reply):
    """encode_parts feeds the RM, DPO and SFT: prompt ids then reply ids + EOS are the template's tokens
    for the conversation with the reply as the next assistant turn, its end token included."""
    _, tokenizer = tiny
    prompt_ids, reply_ids = encode_parts(tokenizer, CHAT, reply, 512)
    whole = template_ids(tokenizer, [*as_dicts(CHAT), {"role": "assistant", "content": reply}], False)
    assert prompt_ids + reply_ids == whole
    assert prompt_ids == template_ids(tokenizer, as_dicts(CHAT), True)


def test_sfts_loss_mask_covers_the_final_assistant_turn_and_its_end_token_only(tiny):
    _, tokenizer = tiny
    batch = collate([RankedPrompt(CHAT, [REPLIES[1]], [[0]])], tokenizer, 512, "drop")
    reply_ids = tokenizer(REPLIES[1], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    masked = batch.completion_ids[0][batch.completion_mask[0].bool()].tolist()
    assert masked == reply_ids  # "Red." (the earlier assistant turn) and the template around it are prompt
    assert batch.prompt_ids[0][batch.prompt_mask[0].bool()].tolist() == template_ids(tokenizer, as_dicts(CHAT), True)


def test_the_shared_prompt_path_gives_a_plain_forwards_log_probs(policy):
    model, tokenizer = policy
    batch = collate([RankedPrompt(CHAT, REPLIES, [[0], [1]])], tokenizer, 512, "drop")
    with torch.no_grad():
        shared = completion_token_logprobs(model, batch)  # (2, C)
        for row, reply in enumerate(REPLIES):
            prompt_ids, reply_ids = encode_parts(tokenizer, CHAT, reply, 512)
            ids = torch.tensor([prompt_ids + reply_ids])
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            plain = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[len(prompt_ids) - 1 :]
            assert torch.allclose(shared[row, : len(reply_ids)], plain, atol=1e-4)


def test_the_reward_models_shared_batch_scores_as_its_forward_of_the_whole_conversation(tiny_folder):
    config = RewardModelConfig(heads=1, pooling="last")  # a whole sequence has no prompt/reply boundary to pool
    rm, tokenizer = new_reward_model(str(tiny_folder), tiny_folder.parent, config)
    rm.eval()
    batch = collate([RankedPrompt(CHAT, REPLIES, [[0], [1]])], tokenizer, 512, "drop")
    with torch.no_grad():
        shared = rm.forward_batch(batch)
        for row, reply in enumerate(REPLIES):
            prompt_ids, reply_ids = encode_parts(tokenizer, CHAT, reply, 512)
            ids = torch.tensor([prompt_ids + reply_ids])
            assert torch.allclose(shared[row], rm(ids, torch.ones_like(ids))[0], atol=1e-4)


def test_a_conversation_too_long_for_the_context_loses_its_oldest_exchanges_first(tiny):
    _, tokenizer = tiny
    long_chat = (
        Message("system", "Be kind."),
        *[Message(role, f"{role} turn {i} " + "x" * 40) for i in range(3) for role in ("user", "assistant")],
        Message("user", "Last question?"),
    )
    assert fit_to_context(tokenizer, long_chat, 10_000) == (long_chat, 0)
    without_first = (long_chat[0], *long_chat[3:])
    fitted, left_out = fit_to_context(tokenizer, long_chat, prompt_length(tokenizer, without_first))
    assert (fitted, left_out) == (without_first, 2)  # one exchange (a user turn and its reply) out
    only_last = (long_chat[0], long_chat[-1])
    assert fit_to_context(tokenizer, long_chat, prompt_length(tokenizer, only_last)) == (only_last, 6)
    assert fit_to_context(tokenizer, long_chat, 5) is None  # not even the system and last message fit
    assert fit_to_context(tokenizer, "x" * 50, 5) is None


def test_sampling_answers_a_conversation(tiny):
    model, tokenizer = tiny
    groups = sample(model, tokenizer, [CHAT, "Hi"], 2, SamplingConfig(max_new_tokens=6, seed=0))
    assert [len(g) for g in groups] == [2, 2]


def test_fit_prompts_cuts_what_it_can_and_leaves_out_what_cannot_fit(tiny):
    _, tokenizer = tiny
    fitted = fit_prompts(tokenizer, [CHAT, "y" * 500, "Short?"], prompt_length(tokenizer, CHAT[:1] + CHAT[3:]))
    assert fitted == [CHAT[:1] + CHAT[3:], "Short?"]  # one exchange out; the long single turn left out
