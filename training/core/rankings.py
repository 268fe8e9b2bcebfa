"""A ranked prompt as the training core reads it: plain values, no torch. The pairs an order
makes are `labeling.statistics.ranked_pairs`."""

from dataclasses import dataclass

from labeling.conversations import Chat


@dataclass(frozen=True)
class RankedPrompt:
    prompt: Chat
    completions: list[str]
    order: list[list[int]]
    """Tie groups of indices into `completions`, best first: [[2], [0, 3], [1]]."""
    labeler: str = ""
    weight: float = 1.0
    """How much the ranking counts in the loss: its labeler's reliability (1 = fully)."""
