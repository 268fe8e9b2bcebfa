"""Imports prompts into a project from a JSONL, CSV or plain-text file."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.importing import FORMATS, ImportFileError, ImportReport, do_import_prompt_file
from labeling.management.commands._common import get_project


def progress_line(report: ImportReport) -> None:
    sys.stdout.write(
        f"\r{report.read:,} lines read: {report.imported:,} imported, {report.duplicates:,} duplicates, "
        f"{report.invalid_count:,} invalid"
    )
    sys.stdout.flush()


class Command(BaseCommand):
    help = (
        "Import prompts from FILE: JSONL (a 'prompt' field, other fields kept as metadata), CSV (a 'prompt' "
        "column, other columns kept as metadata) or text (one prompt per line). Invalid lines are reported "
        "by number and skipped (the command then exits with status 1); duplicates are counted and skipped."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("file", help="The file to import; its extension (.jsonl, .csv, .txt) gives the format.")
        parser.add_argument("--format", choices=FORMATS, help="The file's format, when its extension does not say.")
        parser.add_argument("--atomic", action="store_true", help="All or nothing: one invalid line stores none.")

    def handle(self, *args, project: str, file: str, format: str | None, atomic: bool, **options) -> None:
        target = get_project(project)
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No file {file}.")
        try:
            with path.open("rb") as stream:
                report = do_import_prompt_file(target, stream, path.name, format, atomic, on_progress=progress_line)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        finally:
            sys.stdout.write("\n")
        self.stdout.write("\n".join(report.summary()))
        if report.rolled_back:
            raise CommandError("Nothing was imported (--atomic).")
        if report.invalid_count:  # a script must notice a partial import
            refused = f"{report.invalid_count:,} line{'s' if report.invalid_count > 1 else ''} refused"
            raise CommandError(
                f"{refused}; the other prompts were imported. Fix the lines and import the file again (duplicates "
                "are skipped), or use --atomic."
            )
