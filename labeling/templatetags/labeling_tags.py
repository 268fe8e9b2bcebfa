from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from labeling.statistics import evidence_text, figure_text, share_text

register = template.Library()
# Raw HTML in the source is escaped, and markdown-it refuses javascript:, vbscript:, file: and
# data: links (validateLink), so what these render is safe to mark safe.
_guidelines = MarkdownIt("commonmark", {"html": False})
# Prompts and completions as chat models write them: one newline is a line break, GFM tables and
# ~~strikethrough~~. Images are off: `![alt](url)` shows as a link, so a URL a model wrote is never
# fetched by the labeler's browser.
_model_text = (
    MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"]).disable("image")
)


@register.filter
def markdown(text: str) -> SafeString:
    """Renders staff-written Markdown (project guidelines)."""
    return mark_safe(_guidelines.render(text))  # noqa: S308 - html is disabled above


@register.filter
def markdown_text(text: str) -> SafeString:
    """Renders a prompt or a completion as Markdown, raw HTML shown as text, no images."""
    return mark_safe(_model_text.render(text))  # noqa: S308 - html is disabled above


@register.filter
def percent(share: float | None, digits: int = 0) -> str:
    """0.734 -> "73%"; None or a missing value (nothing to measure yet) -> "–"."""
    return f"{share:.{digits}%}" if isinstance(share, int | float) else "–"


@register.filter
def signed(value: float | None) -> str:
    """A figure with its sign and 3 significant digits; None or a missing value -> "–"."""
    return f"{value:+.3g}" if isinstance(value, int | float) else "–"


# Shares of pairs (labeling.statistics): "62%" / "95% CI 47–75%, 40 pairs" / both in one line.
register.filter("share_text", share_text)
register.filter("evidence_text", evidence_text)
register.filter("figure", figure_text)
