"""The API's HTML renderer, in a module of its own: settings name it, and DRF imports it while it
builds its views, so it must import no view module (as webapp.api_views does)."""

from rest_framework import renderers


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable pages without the inline <style> of pygments' colours (for code in view
    descriptions): the Content-Security-Policy refuses inline styles."""

    def get_context(self, *args, **kwargs) -> dict:
        context = super().get_context(*args, **kwargs)
        context["code_style"] = None
        return context
