from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

register = template.Library()
# Raw HTML in the source is escaped, and markdown-it refuses javascript: and data: links.
_markdown = MarkdownIt("commonmark", {"html": False})


@register.filter
def markdown(text: str) -> SafeString:
    """Renders staff-written Markdown (project guidelines); never used on prompts or completions."""
    return mark_safe(_markdown.render(text))  # noqa: S308 - html is disabled above


@register.filter
def percent(share: float | None, digits: int = 0) -> str:
    """0.734 -> "73%"; None or a missing value (nothing to measure yet) -> "–"."""
    return f"{share:.{digits}%}" if isinstance(share, int | float) else "–"


@register.filter
def signed(value: float | None) -> str:
    """A figure with its sign and 3 significant digits; None or a missing value -> "–"."""
    return f"{value:+.3g}" if isinstance(value, int | float) else "–"
