import pytest
import torch

from training.core.config import SamplingConfig
from training.core.generation import Sample, _decode, sample, sample_distinct

PROMPTS = ["Hi", "What is up?", "Tell me a story about a cat.", "2+2=?", "Why?"]


def test_n_prompts_by_k_samples_each_with_a_finish_reason(tiny):
    model, tokenizer = tiny
    config = SamplingConfig(max_new_tokens=12, temperature=1.0)
    results = sample(model, tokenizer, PROMPTS, 3, config)
    assert [len(r) for r in results] == [3] * len(PROMPTS)
    for s in (s for r in results for s in r):
        assert s.finish_reason in {"eos", "length"}
        assert s.token_count <= 12
        assert (s.token_count == 12) == (s.finish_reason == "length")


def test_the_same_seed_gives_the_same_texts_and_another_seed_others(tiny):
    model, tokenizer = tiny
    texts = lambda seed: [s.text for r in sample(model, tokenizer, PROMPTS, 2, SamplingConfig(seed=seed)) for s in r]  # noqa: E731
    assert texts(7) == texts(7)
    assert texts(7) != texts(8)


def test_small_chunks_give_the_same_shape_as_one_batch(tiny):
    model, tokenizer = tiny
    config = SamplingConfig(max_new_tokens=8, max_batch_tokens=64)  # forces several generate calls
    calls = []
    results = sample(model, tokenizer, PROMPTS, 2, config, progress=lambda done, total: calls.append((done, total)))
    assert [len(r) for r in results] == [2] * len(PROMPTS)
    assert len(calls) > 1 and calls[-1] == (len(PROMPTS), len(PROMPTS))


def test_decode_cuts_at_the_first_eos(tiny):
    _, tokenizer = tiny
    a, b, eos, pad = tokenizer.convert_tokens_to_ids(["a", "b"]) + [2, 3]
    assert _decode(torch.tensor([a, b, eos, pad, pad]), [eos], tokenizer) == Sample("ab", 2, "eos")
    assert _decode(torch.tensor([a, b, a]), [eos], tokenizer) == Sample("aba", 3, "length")


def test_sampled_texts_of_a_prompt_are_distinct(tiny):
    model, tokenizer = tiny
    results = sample_distinct(model, tokenizer, PROMPTS, 4, SamplingConfig(max_new_tokens=6, temperature=1.0))
    for samples in results:
        assert samples is not None and len({s.text for s in samples}) == 4


def test_a_prompt_that_cannot_give_k_distinct_texts_is_left_out(tiny):
    model, tokenizer = tiny
    # One new token with a near-zero temperature: every sample is the same token.
    config = SamplingConfig(max_new_tokens=1, temperature=1e-4)
    assert sample_distinct(model, tokenizer, ["Hi"], 3, config, rounds=2) == [None]


@pytest.mark.slow
def test_the_bundled_model_answers_a_prompt(bundled_store):
    from training.core.loading import load_model

    model, tokenizer = load_model("smollm2-135m-instruct", bundled_store)
    [[first, second]] = sample(model, tokenizer, ["What is 2+2?"], 2, SamplingConfig(max_new_tokens=24, seed=1))
    assert first.text and second.text
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert (bundled_store / "base" / "smollm2-135m-instruct" / "model.safetensors").exists()
