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
