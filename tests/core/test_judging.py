"""An AI judge's verdicts and the order they make: every pair asked in both orders, a tie where the two
orders disagree, and a local model's verdict read from the log-probabilities of the letters."""

import pytest
import torch

from labeling.conversations import Message
from training.core.judging import (
    Question,
    first_is_better,
    judge_chat,
    letter_ids,
    order_from_verdicts,
    pair_outcomes,
    questions,
    verdict_from_text,
)


def verdicts_from(k: int, better: dict[tuple[int, int], bool]) -> dict[Question, bool]:
    """Both orders of each pair from `better[(i, j)]`, whether i beats j, as a judge without position bias."""
    out = {}
    for (i, j), i_wins in better.items():
        out[Question(i, j)] = i_wins
        out[Question(j, i)] = not i_wins
    return out


def test_every_pair_is_asked_in_both_orders():
    asked = questions(4)
    assert len(asked) == 12 and len(set(asked)) == 12
    assert {(q.second, q.first) for q in asked} == {(q.first, q.second) for q in asked}


def test_a_judge_that_agrees_with_itself_gives_a_whole_order():
    # 2 beats everyone, 0 beats 1 and 3, 3 beats 1
    better = {(0, 1): True, (0, 2): False, (0, 3): True, (1, 2): False, (1, 3): False, (2, 3): True}
    assert order_from_verdicts(4, verdicts_from(4, better)) == [[2], [0], [3], [1]]


def test_a_judge_that_always_picks_the_first_answer_ties_everything():
    position_bias = {q: True for q in questions(3)}
    assert set(pair_outcomes(3, position_bias).values()) == {0}
    assert order_from_verdicts(3, position_bias) == [[0, 1, 2]]


def test_a_pair_whose_two_orders_disagree_is_tied_and_no_verdict_is_a_tie():
    verdicts = verdicts_from(3, {(0, 1): True, (0, 2): True, (1, 2): True})
    verdicts[Question(2, 1)] = True  # asked C before B it prefers C: B against C is a tie
    assert pair_outcomes(3, verdicts) == {(0, 1): 1, (0, 2): 1, (1, 2): 0}
    assert order_from_verdicts(3, verdicts) == [[0], [1, 2]]
    verdicts[Question(1, 0)] = None  # no usable answer
    assert pair_outcomes(3, verdicts)[(0, 1)] == 0


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("A", True), ("B", False), (" b.", False), ("**A**", True), ("Answer B is better", False), ("Neither", None),
     ("", None), ("As a judge, B", False)],
)  # fmt: skip
def test_an_endpoints_reply_is_read_as_the_first_standalone_letter(reply, verdict):
    assert verdict_from_text(reply) is verdict


def test_the_judge_is_asked_with_its_instructions_the_request_and_both_answers():
    chat = judge_chat("Be fair.", (Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Why?")),
                      "first", "second")  # fmt: skip
    assert chat[0] == Message("system", "Be fair.")
    assert "User: Hi\n\nAssistant: Hello\n\nUser: Why?" in chat[1].content
    assert chat[1].content.index("Answer A:\nfirst") < chat[1].content.index("Answer B:\nsecond")


def test_a_local_verdict_is_the_letters_softmax_at_the_first_reply_token(tiny):
    model, tokenizer = tiny
    chats = [judge_chat("Judge.", "Say hi", "hi", "hello there"), judge_chat("Judge.", "2+2?", "4", "5")]
    p = first_is_better(model, tokenizer, chats, batch_size=2)  # (2,)
    a, b = letter_ids(tokenizer)
    for chat, got in zip(chats, p, strict=True):  # one chat at a time, no padding: the same numbers
        text = tokenizer.apply_chat_template([m._asdict() for m in chat], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0, -1, [a, b]]
        assert got.item() == pytest.approx(logits.softmax(-1)[0].item(), abs=1e-5)
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
