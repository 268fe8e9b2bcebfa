"""Example preference functions for `simulate_labelers` and `evaluate_policy`: (prompt, completions) -> scores."""


def shorter(prompt: str, completions: list[str]) -> list[float]:
    """Prefers concise answers: a preference SmolLM2 does not already satisfy at 128 tokens."""
    return [-len(text.split()) for text in completions]


def mentions_the_prompt(prompt: str, completions: list[str]) -> list[float]:
    """Prefers answers that reuse the prompt's words (a stand-in for relevance)."""
    words = {w.lower().strip(".,?!") for w in prompt.split() if len(w) > 3}
    return [sum(w.lower().strip(".,?!") in words for w in text.split()) for text in completions]


# Preferences that are not about length: each scores a rate or a property of the text, not an
# amount of it, so a longer answer is not a better one (benchmarks/label_efficiency.py prints how
# often the longer answer wins under each). Scores are scaled so that 1 is a clear difference: a
# simulated labeler's Plackett–Luce noise is in those units.

SECOND_PERSON = {"you", "your", "yours", "you're", "yourself", "you'll", "you've"}
HEDGES = {"may", "might", "perhaps", "possibly", "probably", "generally", "usually", "often", "typically", "can"}


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?()\"'*").lower() for w in text.split()] or [""]


def addresses_the_reader(prompt: str, completions: list[str]) -> list[float]:
    """Prefers answers that speak to the reader: 'you', 'your', ... per 20 words."""
    return [20 * sum(w in SECOND_PERSON for w in words) / len(words) for words in map(_words, completions)]


def plain_words(prompt: str, completions: list[str]) -> list[float]:
    """Prefers plain vocabulary: a shorter average word, in half-letters, whatever the answer's length."""
    return [-2 * sum(len(w) for w in words) / len(words) for words in map(_words, completions)]


def no_hedging(prompt: str, completions: list[str]) -> list[float]:
    """Prefers committed answers: fewer hedging words ('may', 'might', 'usually', ...) per 20 words."""
    return [-20 * sum(w in HEDGES for w in words) / len(words) for words in map(_words, completions)]
