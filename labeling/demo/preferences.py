"""Example preference functions for `simulate_labelers` and `evaluate_policy`: (prompt, completions) -> scores."""


def shorter(prompt: str, completions: list[str]) -> list[float]:
    """Prefers concise answers: a preference SmolLM2 does not already satisfy at 128 tokens."""
    return [-len(text.split()) for text in completions]


def mentions_the_prompt(prompt: str, completions: list[str]) -> list[float]:
    """Prefers answers that reuse the prompt's words (a stand-in for relevance)."""
    words = {w.lower().strip(".,?!") for w in prompt.split() if len(w) > 3}
    return [sum(w.lower().strip(".,?!") in words for w in text.split()) for text in completions]
