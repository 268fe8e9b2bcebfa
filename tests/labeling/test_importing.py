import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling import importing
from labeling.importing import (
    ImportFileError,
    InvalidLine,
    do_import_prompt_file,
    do_import_prompts,
    guess_format,
    parse_records,
    prompt_texts_from_jsonl,
)
from tests.factories import ProjectFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def import_bytes(project, content: bytes, name: str, **options):
    return do_import_prompt_file(project, io.BytesIO(content), name, **options)


def stored(project) -> list[tuple[str, dict, str]]:
    return list(project.prompts.order_by("id").values_list("text", "metadata", "source"))


def test_it_imports_jsonl_keeping_other_fields_as_metadata():
    project = ProjectFactory()
    content = (
        b'{"prompt": "Why is the sky blue?", "topic": "physics", "difficulty": 2}\n'
        b"\n"
        b'{"prompt": "Caf\xc3\xa9 or tea?", "tags": ["food"]}\n'
    )
    report = import_bytes(project, content, "batch-1.jsonl")
    assert (report.imported, report.duplicates, report.invalid_count) == (2, 0, 0)
    assert stored(project) == [
        ("Why is the sky blue?", {"topic": "physics", "difficulty": 2}, "batch-1.jsonl"),
        ("Café or tea?", {"tags": ["food"]}, "batch-1.jsonl"),
    ]


def test_it_imports_csv_keeping_other_columns_as_metadata():
    project = ProjectFactory()
    content = (
        "\ufeffid,prompt,topic\r\n"  # Excel's byte-order mark and line endings
        '1,"Write a haiku, about rain",poetry\r\n'
        '2,"Two lines:\r\nfirst, then second",\r\n'
        "3,Plain one,misc\r\n"
    ).encode()
    report = import_bytes(project, content, "prompts.CSV")
    assert (report.imported, report.invalid_count) == (3, 0)
    assert stored(project) == [
        ("Write a haiku, about rain", {"id": "1", "topic": "poetry"}, "prompts.CSV"),
        ("Two lines:\nfirst, then second", {"id": "2", "topic": ""}, "prompts.CSV"),
        ("Plain one", {"id": "3", "topic": "misc"}, "prompts.CSV"),
    ]


def test_it_imports_text_one_prompt_per_line_ignoring_blank_lines():
    project = ProjectFactory()
    report = import_bytes(project, b"First prompt\n\n   \n  Second prompt  \r\nThird", "prompts.txt")
    assert (report.imported, report.invalid_count) == (3, 0)
    assert [text for text, _, _ in stored(project)] == ["First prompt", "Second prompt", "Third"]


def test_it_reports_bad_lines_by_number_and_imports_the_good_ones():
    project = ProjectFactory()
    lines = [
        '{"prompt": "good one"}',
        "not json",
        '{"prompt": ""}',
        '{"prompt": "   "}',
        '{"prompt": 42}',
        '{"text": "no prompt field"}',
        '["an", "array"]',
        '{"prompt": "x", "score": NaN}',
        '{"prompt": "nul \\u0000 inside"}',
        '{"prompt": "' + "x" * (importing.MAX_PROMPT_CHARS + 1) + '"}',
        '{"prompt": "good two"}',
    ]
    report = import_bytes(project, "\n".join(lines).encode(), "mixed.jsonl")
    assert (report.imported, report.invalid_count) == (2, 9)
    assert report.invalid == [
        InvalidLine(2, "not valid JSON: Expecting value at column 1"),
        InvalidLine(3, "the prompt cannot be empty"),
        InvalidLine(4, "the prompt cannot be empty"),
        InvalidLine(5, '"prompt" is a number, not a string or a list of messages'),
        InvalidLine(6, 'no "prompt" or "messages" field'),
        InvalidLine(7, 'expected an object with a "prompt" or "messages" field, not an array'),
        InvalidLine(8, "not valid JSON: NaN is not valid JSON"),
        InvalidLine(9, "the prompt: a NUL character (\\u0000) cannot be stored"),
        InvalidLine(10, "the prompt is 100,001 characters; the limit is 100,000"),
    ]
    assert [text for text, _, _ in stored(project)] == ["good one", "good two"]
    assert report.summary()[:4] == [
        f"Imported 2 prompts from mixed.jsonl in {report.seconds:.1f} s.",
        "Duplicates skipped: 0 (already in the project or repeated in the input).",
        "Invalid lines: 9",
        "  line 2: not valid JSON: Expecting value at column 1",
    ]


def test_it_reports_csv_rows_by_the_line_they_start_on():
    project = ProjectFactory()
    content = b'prompt,topic\n"spans\ntwo lines",a\nonly-one-field\n,empty prompt\n"fine",b,extra\nok,c\n'
    report = import_bytes(project, content, "rows.csv")
    assert report.invalid == [
        InvalidLine(4, "1 field where the header has 2"),
        InvalidLine(5, "the prompt cannot be empty"),
        InvalidLine(6, "3 fields where the header has 2"),
    ]
    assert [text for text, _, _ in stored(project)] == ["spans\ntwo lines", "ok"]


UNCLOSED_QUOTE = b'prompt,topic\nWhat is the sun?,science\n"Unclosed quote, history\n"What causes tides?",science\n'


def test_a_csv_whose_quote_swallows_the_next_row_is_refused_by_line_and_nothing_is_stored():
    project = ProjectFactory()
    with pytest.raises(ImportFileError, match="broken at the row that starts on line 3 .*a quote is missing"):
        import_bytes(project, UNCLOSED_QUOTE, "three.csv")
    assert project.prompts.count() == 0


def test_a_csv_quote_never_closed_is_refused_by_the_line_it_opens_on():
    project = ProjectFactory()
    with pytest.raises(ImportFileError, match="broken at .*line 3.*a quote opened there is never closed"):
        import_bytes(project, b'prompt\nfine\n"never closed\nmore\n', "open.csv")
    assert project.prompts.count() == 0


def test_the_command_refuses_the_broken_csv_with_a_non_zero_exit(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "three.csv"
    path.write_bytes(UNCLOSED_QUOTE)
    with pytest.raises(CommandError, match="The CSV is broken at the row that starts on line 3"):
        call_command("import_prompts", "--project", str(project.pk), str(path))
    assert project.prompts.count() == 0


def test_the_admin_refuses_the_broken_csv_and_says_where(client, admin_user):
    project = ProjectFactory()
    client.force_login(admin_user)
    response = upload(client, project, UNCLOSED_QUOTE, "three.csv")
    assert response.status_code == 422
    assert "The CSV is broken at the row that starts on line 3" in response.content.decode()
    assert project.prompts.count() == 0


def test_it_refuses_a_csv_without_a_prompt_column():
    project = ProjectFactory()
    with pytest.raises(ImportFileError, match='no "prompt" column \\(its columns: text, topic\\)'):
        import_bytes(project, b"text,topic\nhello,a\n", "rows.csv")
    assert project.prompts.count() == 0


def test_it_reports_a_line_over_the_byte_limit_and_goes_on(monkeypatch):
    monkeypatch.setattr(importing, "MAX_LINE_BYTES", 40)
    project = ProjectFactory()
    content = b'{"prompt": "short"}\n{"prompt": "' + b"y" * 200 + b'"}\n{"prompt": "after"}\n'
    report = import_bytes(project, content, "long.jsonl")
    assert report.invalid == [InvalidLine(2, "the line is over 40 bytes")]
    assert [text for text, _, _ in stored(project)] == ["short", "after"]


def test_with_atomic_one_bad_line_stores_nothing():
    project = ProjectFactory()
    content = b'{"prompt": "one"}\n{"prompt": "two"}\n{"prompt": null}\n{"prompt": "four"}\n'
    report = import_bytes(project, content, "all-or-nothing.jsonl", atomic=True)
    assert report.rolled_back
    assert (report.imported, report.invalid) == (
        0,
        [InvalidLine(3, '"prompt" is null, not a string or a list of messages')],
    )
    assert report.summary()[0] == (
        "Nothing imported from all-or-nothing.jsonl: 1 invalid line, and the import was all or nothing. "
        "Fix it and import again."
    )
    assert project.prompts.count() == 0


def test_with_atomic_a_clean_file_is_imported():
    project = ProjectFactory()
    report = import_bytes(project, b"one\ntwo\n", "clean.txt", atomic=True)
    assert (report.rolled_back, report.imported) == (False, 2)


def test_it_counts_and_skips_duplicates_in_the_project_and_in_the_file_across_batches(monkeypatch):
    monkeypatch.setattr(importing, "BATCH_SIZE", 2)
    project = ProjectFactory()
    PromptFactory(project=project, text="already there")
    PromptFactory(text="in another project")  # other projects do not count
    content = b"already there\nnew one\nnew one\nin another project\nnew two\nnew one\nnew two\n"
    report = import_bytes(project, content, "dupes.txt")
    assert (report.imported, report.duplicates) == (3, 4)
    assert sorted(project.prompts.values_list("text", flat=True)) == [
        "already there",
        "in another project",
        "new one",
        "new two",
    ]


def test_it_inserts_in_batches_while_streaming(monkeypatch):
    monkeypatch.setattr(importing, "BATCH_SIZE", 2)
    project = ProjectFactory()
    progress = []
    with CaptureQueriesContext(connection) as queries:
        report = do_import_prompt_file(
            project,
            io.BytesIO(b"a\nb\nc\nd\ne\n"),
            "five.txt",
            on_progress=lambda r: progress.append((r.read, r.imported)),
        )
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "labeling_prompt"')]
    assert (report.imported, len(inserts)) == (5, 3)
    assert progress == [(2, 2), (4, 4), (5, 5)]


def test_a_file_that_is_not_utf8_stores_nothing_and_names_the_line_and_byte(monkeypatch):
    monkeypatch.setattr(importing, "BATCH_SIZE", 1)  # earlier batches were inserted, and are rolled back
    project = ProjectFactory()
    content = b'{"prompt": "fine"}\n{"prompt": "also fine"}\n{"prompt": "caf\xe9"}\n'
    with pytest.raises(ImportFileError) as error:
        import_bytes(project, content, "latin1.jsonl")
    assert str(error.value) == (
        "latin1.jsonl is not UTF-8 text: line 3 has byte 0xE9 at byte offset 58 of the file (column 16 of the line), "
        "which is not valid UTF-8. Save the file as UTF-8 and import it again; nothing was imported."
    )
    assert project.prompts.count() == 0


def test_it_shows_the_first_20_invalid_lines_and_counts_them_all():
    project = ProjectFactory()
    report = import_bytes(project, b"{}\n" * 25, "empty-objects.jsonl")
    assert report.invalid_count == 25
    assert [bad.line for bad in report.invalid] == list(range(1, 21))
    assert report.summary()[2] == "Invalid lines: 25 (the first 20 below)"


def test_it_imports_records_held_in_memory_as_the_api_will():
    project = ProjectFactory()
    records = [{"prompt": "from the api", "batch": 7}, {"prompt": 3}, {"prompt": "from the api"}]
    report = do_import_prompts(project, parse_records(records), source="api", unit="item")
    assert (report.imported, report.duplicates) == (1, 1)
    assert report.summary()[3] == '  item 2: "prompt" is a number, not a string or a list of messages'
    assert stored(project) == [("from the api", {"batch": 7}, "api")]


def test_it_guesses_the_format_from_the_extension_or_asks_for_one():
    assert [guess_format(n) for n in ("a.jsonl", "b.NDJSON", "c.csv", "d.txt")] == ["jsonl", "jsonl", "csv", "txt"]
    with pytest.raises(ImportFileError, match="Cannot tell the format of data.json"):
        guess_format("data.json")


def test_it_reads_the_prompt_texts_of_a_jsonl_file_in_order(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "First?", "topic": "a"}\n\n{"prompt": "Café?"}\n', encoding="utf-8")
    assert prompt_texts_from_jsonl(path) == ["First?", "Café?"]


def test_reading_prompt_texts_names_the_file_and_the_first_bad_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "Fine"}\n{"text": "no prompt"}\noops\n')
    with pytest.raises(ImportFileError, match=r'prompts\.jsonl, line 2: no "prompt" or "messages" field'):
        prompt_texts_from_jsonl(path)


def test_reading_prompt_texts_from_a_missing_file_names_it(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(ImportFileError, match=r"Cannot read .*missing\.jsonl"):
        prompt_texts_from_jsonl(path)


def test_the_command_prints_progress_and_the_report(tmp_path, capsys):
    project = ProjectFactory(name="Imports")
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join([json.dumps({"prompt": f"Prompt {n}"}) for n in range(5)] + ["oops"]) + "\n")
    with pytest.raises(CommandError, match="1 line refused; the other prompts were imported"):  # exit status 1
        call_command("import_prompts", "--project", "Imports", str(path))
    out = capsys.readouterr().out
    assert "6 lines read: 5 imported, 0 duplicates, 1 invalid" in out
    assert "Imported 5 prompts from prompts.jsonl in" in out
    assert "  line 6: not valid JSON: Expecting value at column 1" in out
    assert project.prompts.filter(source="prompts.jsonl").count() == 5


def test_the_command_with_atomic_fails_and_stores_nothing_on_a_bad_line(tmp_path, capsys):
    project = ProjectFactory()
    path = tmp_path / "prompts.txt"
    path.write_text("one\ntwo\n")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_prompts", "--project", str(project.pk), str(path), "--format", "jsonl", "--atomic")
    assert "line 1: not valid JSON" in capsys.readouterr().out
    assert project.prompts.count() == 0


def test_the_command_refuses_a_file_that_is_not_utf8(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "prompts.txt"
    path.write_bytes("ok\nnaïve\n".encode("latin-1"))
    with pytest.raises(CommandError, match="prompts.txt is not UTF-8 text: line 2 has byte 0xEF"):
        call_command("import_prompts", "--project", str(project.pk), str(path))
    assert project.prompts.count() == 0


def upload(client, project, content: bytes, name: str, **fields):
    url = reverse("admin:labeling_project_import", args=[project.pk])
    return client.post(url, {"file": SimpleUploadedFile(name, content), **fields})


def test_staff_reach_the_upload_page_from_the_project_page(client, admin_user):
    project = ProjectFactory()
    client.force_login(admin_user)
    page = client.get(reverse("admin:labeling_project_change", args=[project.pk]))
    assert page.status_code == 200
    assert reverse("admin:labeling_project_import", args=[project.pk]) in page.content.decode()
    form = client.get(reverse("admin:labeling_project_import", args=[project.pk]))
    assert form.status_code == 200
    assert 'type="file"' in form.content.decode()


def test_staff_upload_a_file_and_see_the_report(client, admin_user):
    project = ProjectFactory()
    client.force_login(admin_user)
    response = upload(client, project, b'{"prompt": "<b>one</b>"}\n{"prompt": ""}\n{"prompt": "two"}\n', "up.jsonl")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Imported 2 prompts from up.jsonl in" in page
    assert "line 2: the prompt cannot be empty" in page
    assert list(project.prompts.values_list("text", "source")) == [("<b>one</b>", "up.jsonl"), ("two", "up.jsonl")]


def test_an_atomic_upload_with_a_bad_line_stores_nothing(client, admin_user):
    project = ProjectFactory()
    client.force_login(admin_user)
    response = upload(client, project, b"id,prompt\n1,fine\n2,\n", "up.csv", atomic="on")
    assert response.status_code == 200
    assert "Nothing imported from up.csv: 1 invalid line" in response.content.decode()
    assert project.prompts.count() == 0


def test_an_upload_that_is_not_utf8_is_refused_with_the_reason(client, admin_user):
    project = ProjectFactory()
    client.force_login(admin_user)
    response = upload(client, project, "fine\nstill fine\nna\xefve\n".encode("cp1252"), "up.txt")
    assert response.status_code == 422
    assert "up.txt is not UTF-8 text: line 3 has byte 0xEF" in response.content.decode()
    assert project.prompts.count() == 0


def test_it_refuses_the_upload_to_a_labeler(client, labeler):
    project = ProjectFactory()
    client.force_login(labeler)
    response = upload(client, project, b"sneaky\n", "up.txt")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert project.prompts.count() == 0


def test_it_refuses_the_upload_to_staff_who_may_not_change_projects(client):
    project = ProjectFactory()
    client.force_login(UserFactory(username="viewer", is_staff=True))
    assert upload(client, project, b"sneaky\n", "up.txt").status_code == 403
    assert project.prompts.count() == 0
