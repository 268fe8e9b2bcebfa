"""Streams a project's preferences out as JSONL: pairs for TRL-style trainers (as texts or conversations),
full rankings, or demonstrations as SFT messages."""

import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.exporting import FORMATS, TIE_MODES, export_rows, jsonl_blocks
from labeling.management.commands._common import get_project


class Command(BaseCommand):
    help = (
        "Export a project's preferences as JSONL: 'pairs' ({prompt, chosen, rejected}, one line per ordered "
        "pair of each ranking), 'conversational' (the same pairs as TRL's lists of messages), 'rankings' (one "
        "line per ranking with its provenance, ties and K-way order) or 'demonstrations' (ideal answers as "
        "{messages} for SFT). Streams in constant memory; writes to stdout unless --output is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument(
            "--ties",
            choices=TIE_MODES,
            help="pairs and conversational: drop tied pairs (default), or write each both ways ('half').",
        )
        parser.add_argument("--include-excluded", action="store_true", help="Keep rankings staff excluded.")
        parser.add_argument("--no-ai", action="store_true", help="Leave out the AI judge's rankings.")
        parser.add_argument("--output", help="A file to write (replaced only once the export is complete).")

    def handle(self, *args, project, format, ties, include_excluded, output, no_ai, **options) -> None:
        if ties and format not in ("pairs", "conversational"):
            raise CommandError("--ties applies to --format pairs and conversational only.")
        rows = self._counted(export_rows(get_project(project), format, ties or "drop", include_excluded, not no_ai))
        started = time.monotonic()
        if output:
            self._write_file(Path(output), jsonl_blocks(rows))
        else:
            for block in jsonl_blocks(rows):
                self.stdout.write(block, ending="")
        where = output or "stdout"
        self.stderr.write(f"\rWrote {self.count:,} {format} to {where} in {time.monotonic() - started:.1f} s.")

    def _counted(self, rows: Iterable[dict]) -> Iterator[dict]:
        self.count = 0
        for row in rows:
            self.count += 1
            if self.count % 10_000 == 0:
                sys.stderr.write(f"\r{self.count:,} rows")
                sys.stderr.flush()
            yield row

    def _write_file(self, path: Path, blocks: Iterable[str]) -> None:
        """Writes beside `path` and renames into place, so a failed export leaves no half-written file."""
        if not path.parent.is_dir():
            raise CommandError(f"No folder {path.parent} to write {path.name} into.")
        handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                for block in blocks:
                    out.write(block)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(staging, 0o666 & ~umask)  # mkstemp makes it private; give it a new file's usual mode
            os.replace(staging, path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
