"""Importing prompts: from JSONL, CSV or plain-text files, or from records already in memory (the API).

A JSONL line (or API record) is today's {"prompt": "text"}, or a conversation in the OpenAI / TRL
messages form: {"messages": [{"role": ..., "content": ...}, ...]} or {"prompt": [...]}. A conversation
of one user message is stored as the plain prompt it is.

A file is read one line at a time and its prompts are stored in batches, so memory does not grow
with its length. Lines that cannot be prompts are reported by number with the reason and skipped,
or with `atomic` nothing is stored when there is one. Prompts already in the project, or repeated
in the input, are counted and skipped. A file that is not UTF-8 stores nothing at all: the whole
import is one transaction, holding the project's row lock so two imports into a project do not race.
"""

import codecs
import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.db import transaction

from labeling.conversations import Chat, as_dicts, check_messages, is_single_turn, last_message
from labeling.models import Project, Prompt, prompt_digest

MAX_PROMPT_CHARS = 100_000
MAX_LINE_BYTES = 1 << 20
BATCH_SIZE = 1000
INVALID_SHOWN = 20
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "txt"}
FORMATS = ("jsonl", "csv", "txt")


class ImportFileError(ValueError):
    """The input as a whole cannot be read (not UTF-8, no prompt column, unknown format); nothing was stored."""


@dataclass(frozen=True)
class PromptRecord:
    line: int
    chat: Chat
    metadata: dict

    @property
    def text(self) -> str:
        """The prompt's text, or a conversation's last (user) message."""
        return last_message(self.chat)


@dataclass(frozen=True)
class InvalidLine:
    line: int
    reason: str


Parsed = PromptRecord | InvalidLine
Lines = Iterable[tuple[int, str | None]]


@dataclass
class ImportReport:
    source: str
    atomic: bool
    unit: str = "line"
    """What `InvalidLine.line` counts: lines of a file, or items of a list of records."""
    read: int = 0
    """The last line (or item) number read so far."""
    imported: int = 0
    duplicates: int = 0
    invalid_count: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    """The first INVALID_SHOWN invalid lines."""
    rolled_back: bool = False
    """An atomic import met an invalid line, so nothing was stored."""
    seconds: float = 0.0

    def add_invalid(self, bad: InvalidLine) -> None:
        self.invalid_count += 1
        if len(self.invalid) < INVALID_SHOWN:
            self.invalid.append(bad)

    def summary(self) -> list[str]:
        """The report people read, one line of text each: the command prints it and the admin shows it."""
        if self.rolled_back:
            head = (
                f"Nothing imported from {self.source}: {_count(self.invalid_count, 'invalid ' + self.unit)}, and the "
                f"import was all or nothing. Fix {'it' if self.invalid_count == 1 else 'them'} and import again."
            )
        else:
            head = f"Imported {_count(self.imported, 'prompt')} from {self.source} in {self.seconds:.1f} s."
        lines = [
            head,
            f"Duplicates skipped: {self.duplicates:,} (already in the project or repeated in the input).",
            f"Invalid {self.unit}s: {self.invalid_count:,}"
            + (f" (the first {INVALID_SHOWN} below)" if self.invalid_count > INVALID_SHOWN else ""),
        ]
        return lines + [f"  {self.unit} {bad.line}: {bad.reason}" for bad in self.invalid]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class _RollBack(Exception):
    pass


def check_prompt_record(value: object) -> tuple[Chat, dict]:
    """(chat, metadata) of a record {"prompt": "..." or [messages], other fields} or {"messages": [...],
    other fields}; ValueError says what is wrong.

    The other fields become the prompt's metadata. Text PostgreSQL cannot store (NUL characters,
    unpaired surrogates) is refused here rather than failing the whole import later.
    """
    if not isinstance(value, dict):
        raise ValueError(f'expected an object with a "prompt" or "messages" field, not {_json_type(value)}')
    if "prompt" in value and "messages" in value:
        raise ValueError('both "prompt" and "messages": give the conversation once')
    key = "messages" if "messages" in value else "prompt"
    if key not in value:
        raise ValueError('no "prompt" or "messages" field')
    chat, metadata = value[key], {name: item for name, item in value.items() if name != key}
    if isinstance(chat, list):
        messages = check_messages(chat, MAX_PROMPT_CHARS)
        chat = messages[0].content if is_single_turn(messages) else messages
    elif key == "messages":
        raise ValueError(f'"messages" is {_json_type(chat)}, not a list of messages')
    elif not isinstance(chat, str):
        raise ValueError(f'"prompt" is {_json_type(chat)}, not a string or a list of messages')
    elif not chat.strip():
        raise ValueError("the prompt cannot be empty")
    elif len(chat) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(chat):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    texts = [chat] if isinstance(chat, str) else [m.content for m in chat]
    for what, part in (("the prompt", texts), ("the other fields", _strings(metadata))):
        for string in part:
            if "\x00" in string:
                raise ValueError(f"{what}: a NUL character (\\u0000) cannot be stored")
            if not string.isascii() and _has_surrogate(string):
                raise ValueError(f"{what}: an unpaired surrogate (like \\ud800) is not text")
    return chat, metadata


def _strings(value: object) -> Iterator[str]:
    """Every key and string inside a parsed JSON value (iteratively: JSON may nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def _record(line: int, value: object) -> Parsed:
    try:
        chat, metadata = check_prompt_record(value)
    except ValueError as exc:
        return InvalidLine(line, str(exc))
    return PromptRecord(line, chat, metadata)


def _too_long(line: int) -> InvalidLine:
    return InvalidLine(line, f"the line is over {MAX_LINE_BYTES:,} bytes")


def read_lines(file: BinaryIO, name: str) -> Iterator[tuple[int, str | None]]:
    """(number, text without its line ending) for each line of a UTF-8 byte stream; text is None for a
    line over MAX_LINE_BYTES, which is skipped unread. A UTF-8 byte-order mark is dropped.

    Raises ImportFileError naming the line and byte offset of the first byte that is not UTF-8.
    """
    offset, number = 0, 0
    while raw := file.readline(MAX_LINE_BYTES + 1):
        number += 1
        start, offset = offset, offset + len(raw)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = file.readline(MAX_LINE_BYTES + 1)
                offset += len(raw)
            yield number, None
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw, start = raw[len(codecs.BOM_UTF8) :], start + len(codecs.BOM_UTF8)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{name} is not UTF-8 text: line {number} has byte 0x{raw[exc.start]:02X} at byte offset "
                f"{start + exc.start:,} of the file (column {exc.start + 1} of the line), which is not valid "
                "UTF-8. Save the file as UTF-8 and import it again; nothing was imported."
            ) from None
        yield number, text.rstrip("\r\n")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_jsonl(lines: Lines) -> Iterator[Parsed]:
    """One JSON object per line with a "prompt" (or "messages") field; blank lines are skipped."""
    for number, text in lines:
        if text is None:
            yield _too_long(number)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            yield InvalidLine(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
        except ValueError as exc:
            yield InvalidLine(number, f"not valid JSON: {exc}")
        except RecursionError:
            yield InvalidLine(number, "not valid JSON: nested too deeply")
        else:
            yield _record(number, value)


def prompt_texts_from_jsonl(path: Path) -> list[str]:
    """The prompt text of each object in a UTF-8 JSONL file (a conversation's last message), in file order.

    Raises ImportFileError naming the file when it cannot be read, or naming its first invalid
    line and the reason.
    """
    return [last_message(chat) for chat in prompt_chats_from_jsonl(path)]


def prompt_chats_from_jsonl(path: Path) -> list[Chat]:
    """Each object's prompt in a UTF-8 JSONL file, a conversation whole, in file order; errors as
    `prompt_texts_from_jsonl`'s."""
    try:
        with path.open("rb") as file:
            parsed = list(parse_jsonl(read_lines(file, str(path))))
    except OSError as exc:
        raise ImportFileError(f"Cannot read {path}: {exc.strerror}.") from None
    for item in parsed:
        if isinstance(item, InvalidLine):
            raise ImportFileError(f"{path}, line {item.line}: {item.reason}.")
    return [item.chat for item in parsed]


def parse_text(lines: Lines) -> Iterator[Parsed]:
    """One prompt per line, without its surrounding whitespace; blank lines are skipped."""
    for number, text in lines:
        if text is None:
            yield _too_long(number)
        elif text.strip():
            yield _record(number, {"prompt": text.strip()})


def parse_csv(lines: Lines) -> Iterator[Parsed]:
    """A header row naming a "prompt" column, then one prompt per row; the other columns become metadata.

    Quoted fields may span lines (a prompt with line breaks); a row with another number of fields than
    the header is reported by the line it starts on. A quote that breaks the file's structure (one
    never closed, or text after a closing quote: a row that swallowed the next) raises ImportFileError
    naming the line, and nothing is stored: the rows after it cannot be trusted.
    """
    too_long: list[int] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            if text is None:
                too_long.append(number)
            yield "\n" if text is None else text + "\n"

    reader = csv.reader(feed(), strict=True)
    header = _csv_header(reader)
    read = reader.line_num
    while True:
        start = read + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise ImportFileError(_broken_quote(start, reader.line_num, exc)) from None
        yield from (_too_long(number) for number in too_long)
        too_long.clear()
        read = reader.line_num
        if row is None:
            return
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield InvalidLine(start, f"{_count(len(row), 'field')} where the header has {len(header)}")
        else:
            yield _record(start, dict(zip(header, row, strict=True)))


def _broken_quote(start: int, reached: int, exc: csv.Error) -> str:
    where = f"line {start}" if reached <= start else f"the row that starts on line {start} (read to line {reached})"
    if "unexpected end of data" in str(exc):
        why = "a quote opened there is never closed"
    else:
        why = f"a quoted field is followed by more text ({exc}): a quote is missing, so rows ran together"
    return f"The CSV is broken at {where}: {why}. Nothing was imported; fix the quotes and import it again."


def _csv_header(reader) -> list[str]:
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except csv.Error as exc:
        raise ImportFileError(f"The CSV header cannot be read: {exc}. Nothing was imported.") from None
    if header is None:
        return ["prompt"]
    header = [name.strip() for name in header]
    if "prompt" not in header:
        raise ImportFileError(
            f'The CSV header has no "prompt" column (its columns: {", ".join(header)}). Nothing was imported.'
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ImportFileError(f"The CSV header repeats {', '.join(repeated)}. Nothing was imported.")
    return header


def parse_records(records: Iterable[object]) -> Iterator[Parsed]:
    """Records already in memory (the API's JSON list), each like a JSONL line or a bare prompt
    string; numbered from 1."""
    for number, value in enumerate(records, start=1):
        yield _record(number, {"prompt": value} if isinstance(value, str) else value)


PARSERS: dict[str, Callable[[Lines], Iterator[Parsed]]] = {"jsonl": parse_jsonl, "csv": parse_csv, "txt": parse_text}


def guess_format(name: str) -> str:
    found = EXTENSIONS.get(Path(name).suffix.lower())
    if found is None:
        raise ImportFileError(
            f"Cannot tell the format of {name} from its extension ({', '.join(EXTENSIONS)}): "
            f"choose one of {', '.join(FORMATS)}."
        )
    return found


def _batches(parsed: Iterable[Parsed], report: ImportReport) -> Iterator[list[PromptRecord]]:
    batch: list[PromptRecord] = []
    for item in parsed:
        report.read = item.line
        if isinstance(item, InvalidLine):
            report.add_invalid(item)
            continue
        batch.append(item)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _store(project: Project, batch: list[PromptRecord], source: str, report: ImportReport) -> None:
    """Stores a batch's new prompts: one query for those already stored (earlier batches included), one insert."""
    by_digest: dict[str, PromptRecord] = {}
    for record in batch:
        by_digest.setdefault(prompt_digest(record.chat), record)
    stored = set(
        Prompt.objects.filter(project=project, text_sha256__in=by_digest).values_list("text_sha256", flat=True)
    )
    new = [
        Prompt(
            project=project,
            text=record.text,
            messages=[] if isinstance(record.chat, str) else as_dicts(record.chat),
            text_sha256=digest,
            source=source,
            metadata=record.metadata,
        )
        for digest, record in by_digest.items()
        if digest not in stored
    ]
    Prompt.objects.bulk_create(new)
    report.imported += len(new)
    report.duplicates += len(batch) - len(new)


def do_import_prompts(
    project: Project,
    parsed: Iterable[Parsed],
    source: str,
    atomic: bool = False,
    on_progress: Callable[[ImportReport], None] | None = None,
    unit: str = "line",
) -> ImportReport:
    """Stores the valid prompts of `parsed` in batches of BATCH_SIZE and reports on all of it.

    Everything runs in one transaction under the project's row lock: an ImportFileError raised
    while reading (a byte that is not UTF-8, say) stores nothing, and so does an invalid line
    when `atomic` is set (the report then says so). `source` is recorded on every prompt.
    """
    report = ImportReport(source=source[:200], atomic=atomic, unit=unit)
    started = time.monotonic()
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).first()  # one import at a time per project
            for batch in _batches(parsed, report):
                _store(project, batch, report.source, report)
                report.seconds = time.monotonic() - started
                if on_progress is not None:
                    on_progress(report)
            if atomic and report.invalid_count:
                raise _RollBack
    except _RollBack:
        report.rolled_back, report.imported = True, 0
    report.seconds = time.monotonic() - started
    return report


def do_import_prompt_file(
    project: Project,
    file: BinaryIO,
    name: str,
    format: str | None = None,
    atomic: bool = False,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Imports a JSONL, CSV or text file (format guessed from `name` when not given), streamed from `file`.

    Raises ImportFileError (nothing stored) for an unknown format, a CSV without a prompt column,
    or a byte that is not UTF-8.
    """
    format = format or guess_format(name)
    if format not in PARSERS:
        raise ImportFileError(f"Unknown format {format!r}: choose one of {', '.join(FORMATS)}.")
    parse = PARSERS[format]
    source = Path(name).name
    return do_import_prompts(project, parse(read_lines(file, source)), source, atomic, on_progress)
