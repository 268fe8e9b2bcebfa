"""An AI judge's pairwise verdicts and the order they make (pure; a local model's verdicts with torch).

A task of K answers is judged pair by pair, every pair asked in both orders (A then B, B then A) so
that a judge's preference for a position cancels: a pair is won when both orders agree, tied when
they do not. The answers are then ordered by Copeland score (pairs won minus pairs lost), equal
scores tied, so a pair the two orders disagree on stays tied unless the other pairs separate them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from labeling.conversations import Chat, Conversation, Message, as_dicts, plain_transcript

LETTERS = ("A", "B")

Verdict = bool | None
"""Whether the answer shown first is better; None where the judge gave no usable answer."""


@dataclass(frozen=True)
class Question:
    """One pairwise question: answers `first` and `second` (indices into the task's answers)."""

    first: int
    second: int


def questions(k: int) -> list[Question]:
    """Every ordered pair of K answers: K·(K−1) questions, each pair once in each order."""
    return [Question(a, b) for a, b in permutations(range(k), 2)]


def judge_chat(instructions: str, prompt: Chat, first: str, second: str) -> Conversation:
    """The chat a judge is asked: its instructions as the system turn, then the request (a conversation
    as its turns, one per paragraph) and the two answers under the letters A and B, and the question."""
    request = prompt if isinstance(prompt, str) else "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in prompt)
    question = (
        f"The request:\n{request}\n\n"
        f"Answer A:\n{first}\n\n"
        f"Answer B:\n{second}\n\n"
        "Which answer is better? Reply with the single letter A or B."
    )
    return (Message("system", instructions), Message("user", question))


def verdict_from_text(reply: str) -> Verdict:
    """An endpoint's reply read as a verdict: a reply that is one letter ('B', ' b.', '**A**'), else the
    first standalone capital A or B ('Answer B is better', 'As a judge, B'); None when there is none."""
    words = "".join(ch if ch.isalnum() else " " for ch in reply).split()
    if len(words) == 1 and words[0].upper() in LETTERS:
        return words[0].upper() == "A"
    for word in words:
        if word in LETTERS:
            return word == "A"
    return None


def pair_outcomes(k: int, verdicts: Mapping[Question, Verdict]) -> dict[tuple[int, int], int]:
    """Per unordered pair (i < j): +1 when i is better in both orders, −1 when j is, 0 (a tie) when the
    two orders disagree or either gave no verdict."""
    outcomes = {}
    for i in range(k):
        for j in range(i + 1, k):
            ij, ji = verdicts[Question(i, j)], verdicts[Question(j, i)]
            if ij is None or ji is None or ij == ji:  # ij == ji: each order preferred the same position
                outcomes[(i, j)] = 0
            else:
                outcomes[(i, j)] = 1 if ij else -1
    return outcomes


def order_from_verdicts(k: int, verdicts: Mapping[Question, Verdict]) -> list[list[int]]:
    """Answer indices best first, in tie groups, by Copeland score over the pair outcomes."""
    score = [0] * k
    for (i, j), outcome in pair_outcomes(k, verdicts).items():
        score[i] += outcome
        score[j] -= outcome
    groups: dict[int, list[int]] = {}
    for index, value in enumerate(score):
        groups.setdefault(value, []).append(index)
    return [groups[value] for value in sorted(groups, reverse=True)]


def letter_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The token ids a reply starting 'A' or 'B' begins with."""
    first, second = (tokenizer.encode(letter, add_special_tokens=False)[0] for letter in LETTERS)
    return first, second


@torch.no_grad()
def first_is_better(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chats: Sequence[Conversation],
    batch_size: int = 8,
) -> torch.Tensor:
    """P(A) for each judge chat: the softmax over the logits of the letters A and B at the first token
    of the judge's reply (from its log-probabilities, not from parsing text it writes). -> (N,)"""
    a, b = letter_ids(tokenizer)
    texts = [
        tokenizer.apply_chat_template(as_dicts(chat), tokenize=False, add_generation_prompt=True)
        if tokenizer.chat_template
        else plain_transcript(chat) + " "
        for chat in chats
    ]
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # right or left padding alike
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # (B, T, V)
        last = mask.sum(-1) - 1 if tokenizer.padding_side == "right" else torch.full_like(mask[:, 0], ids.shape[1] - 1)
        letters = logits[torch.arange(ids.shape[0], device=device), last][:, [a, b]].float()  # (B, 2)
        out.append(letters.softmax(-1)[:, 0].cpu())
    return torch.cat(out) if out else torch.empty(0)
