"""What labeling tells the rest of the site, without importing it (training listens)."""

from django.dispatch import Signal

conversation_continued = Signal()
"""Sent once a labeler's next user message made a new conversation prompt (after the commit), with
`prompt`: training samples its K replies."""
