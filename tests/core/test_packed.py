import copy

import torch

from training.core.loading import load_model
from training.core.packed import packed_linears


def test_a_packed_model_gives_the_same_logits_tokens_and_gradients(tiny_folder):
    plain, tokenizer = load_model(str(tiny_folder), tiny_folder.parent)
    model = copy.deepcopy(plain)
    query = tokenizer(["Hello there", "Hi"], return_tensors="pt", padding=True)
    greedy = dict(do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    with packed_linears(model):
        assert "forward" in vars(model.lm_head)  # routed through the packed weight
        with torch.no_grad():
            assert torch.allclose(model(**query).logits, plain(**query).logits, atol=1e-4)
            assert torch.equal(model.generate(**query, **greedy), plain.generate(**query, **greedy))
        model(**query).logits.sum().backward()  # with gradients on: nn.Linear's own path
    plain(**query).logits.sum().backward()
    for (name, a), b in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-4), name
    assert "forward" not in vars(model.lm_head)  # undone after the block
