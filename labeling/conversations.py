"""Conversations: a prompt that is a chat (an optional system message, then user and assistant turns,
ending with the user's), the next assistant turn being what the labelers rank.

Pure Python, no Django: the web side checks and shows conversations, the model side (training/core)
formats them with the tokenizer's chat template. A single-turn prompt stays a plain string; a
conversation is a tuple of Messages, immutable and hashable like the string it generalises.
"""

import json
from typing import NamedTuple

ROLES = ("system", "user", "assistant")


class Message(NamedTuple):
    role: str
    content: str


Conversation = tuple[Message, ...]
Chat = str | Conversation
"""What a model is prompted with: one user message as a string, or a whole conversation."""


def check_messages(value: object, max_chars: int) -> Conversation:
    """A conversation from a JSON list of {"role", "content"} objects; ValueError says what is wrong.

    The rules: roles are system, user or assistant; a system message may come first, and only first;
    then user and assistant alternate, starting and ending with the user (the next turn, the one
    ranked, is the assistant's). Keys other than role and content (OpenAI's "name", say) are dropped.
    """
    if not isinstance(value, list) or not value:
        raise ValueError('the messages must be a non-empty list of {"role", "content"} objects')
    messages = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise ValueError(f'message {number} is not an object with "role" and "content"')
        role, content = item["role"], item["content"]
        if role not in ROLES:
            raise ValueError(f"message {number} has role {role!r}; a role is one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"message {number} ({role}) is empty")
        messages.append(Message(role, content))
    turns = messages[1:] if messages[0].role == "system" else messages
    if any(m.role == "system" for m in turns):
        raise ValueError("a system message may only come first")
    for number, message in enumerate(turns):
        expected = "user" if number % 2 == 0 else "assistant"
        if message.role != expected:
            at = number + 1 + (len(messages) - len(turns))
            raise ValueError(f"message {at} is the {message.role}'s where the {expected}'s turn comes")
    if not turns:
        raise ValueError("a conversation needs a user message after the system message")
    if turns[-1].role != "user":
        raise ValueError("the conversation must end with the user's message (the reply is what is ranked)")
    total = sum(len(m.content) for m in messages)
    if total > max_chars:
        raise ValueError(f"the conversation is {total:,} characters; the limit is {max_chars:,}")
    return tuple(messages)


def is_single_turn(messages: Conversation) -> bool:
    return len(messages) == 1


def as_chat(text: str, messages: list | tuple) -> Chat:
    """A stored prompt (its last user message and, for a conversation, all its messages) as a Chat."""
    if not messages:
        return text
    return tuple(Message(m["role"], m["content"]) if isinstance(m, dict) else Message(*m) for m in messages)


def as_dicts(chat: Chat) -> list[dict[str, str]]:
    """The OpenAI / TRL messages form: [{"role": ..., "content": ...}, ...]."""
    if isinstance(chat, str):
        return [{"role": "user", "content": chat}]
    return [{"role": m.role, "content": m.content} for m in chat]


def digest_source(messages: Conversation) -> str:
    """The text a conversation's duplicate check hashes (a single message hashes as its own text)."""
    return json.dumps([list(m) for m in messages], ensure_ascii=False, separators=(",", ":"))


def plain_transcript(chat: Chat) -> str:
    """A conversation as plain text for a model without a chat template (and for simple judges):
    each turn after its role, the assistant's turn open at the end."""
    if isinstance(chat, str):
        return chat
    lines = [f"{m.role.capitalize()}: {m.content}" for m in chat]
    return "\n\n".join([*lines, "Assistant:"])


def continued(chat: Chat, reply: str, user_turn: str) -> Conversation:
    """The conversation so far, the chosen reply, and the next user message."""
    messages = (Message("user", chat),) if isinstance(chat, str) else chat
    return (*messages, Message("assistant", reply), Message("user", user_turn))


def last_message(chat: Chat) -> str:
    """The user's message the reply answers: the prompt itself, or a conversation's last message."""
    return chat if isinstance(chat, str) else chat[-1].content


def turns(chat: Chat) -> int:
    """The user turns in a conversation (a single-turn prompt has one)."""
    return 1 if isinstance(chat, str) else sum(m.role == "user" for m in chat)
