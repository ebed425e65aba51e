"""Text files in any encoding a user's tools write with a mark, and JSON Lines split where the format splits
them: by every reader of items, labelled data and the app's own records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.foundation.text_files import decode_text, jsonl_lines
from shared.errors import InputError
from shared.evaluation.tier_eval import load_labelled
from shared.evaluation.run_analysis import EvalRecord, read_run
from shared.learning.training_data import read_extraction_jsonl, read_labelled_jsonl
from shared.pipeline.parsing import parse_input, parse_request

# JSON allows these raw inside a string (and pydantic writes them raw); str.splitlines splits at each.
SEPARATORS = ["\u2028", "\u2029", "\x85"]
# JSON escapes these, but a .jsonl line of plain text may hold them raw; str.splitlines splits at each too.
CONTROL_SEPARATORS = "\x0b\x0c\x1c\x1d\x1e"


def test_json_lines_split_at_newlines_only_with_a_carriage_return_read_past_and_blank_lines_skipped():
    text = "".join(f'{{"t":"a{c}b"}}\r\n' for c in SEPARATORS) + "\n  \n" + f"plain{CONTROL_SEPARATORS}text"
    lines = list(jsonl_lines(text))
    assert [line for _, line in lines] == [f'{{"t":"a{c}b"}}' for c in SEPARATORS] + [f"plain{CONTROL_SEPARATORS}text"]
    assert [number for number, _ in lines] == [1, 2, 3, 6]


def test_a_jsonl_input_keeps_every_item_whose_text_holds_a_line_separator_and_numbers_its_lines_as_written():
    data = "".join(json.dumps({"text": f"charged{c}twice"}, ensure_ascii=False) + "\n" for c in SEPARATORS)
    parsed = parse_input("s.jsonl", f"{data}plain{CONTROL_SEPARATORS}text\n{{broken\n".encode())
    assert [i.text for i in parsed.items] == [f"charged{c}twice" for c in SEPARATORS] + [f"plain{CONTROL_SEPARATORS}text"]
    assert [i.id for i in parsed.items] == ["s-00001", "s-00002", "s-00003", "s-00004"]
    assert [(e.line, e.reason) for e in parsed.errors] == [(5, "invalid_json")]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-8"])
def test_text_marked_with_its_byte_order_mark_is_read_in_files_and_http_bodies(encoding):
    mark = "\ufeff".encode(encoding)  # what Windows PowerShell 5 and Notepad put first
    jsonl = '{"id": "a", "text": "réclamation €"}\r\n{"id": "b", "text": "二重請求"}\r\n'
    parsed = parse_input("w.jsonl", mark + jsonl.encode(encoding))
    assert [(i.id, i.text) for i in parsed.items] == [("a", "réclamation €"), ("b", "二重請求")]
    assert parse_input("w.txt", mark + "ligne\nsuivante".encode(encoding)).items[0].text == "ligne\nsuivante"
    items, _ = parse_request(mark + '{"items": [{"id": "a", "text": "¿dónde?"}]}'.encode(encoding))
    assert [i.text for i in items] == ["¿dónde?"]


@pytest.mark.parametrize("data,reason", [
    (b"\xfa\xfb plain bytes", "invalid_utf8"),
    (b"\xef\xbb\xbf\xfa", "invalid_utf8"),  # marked UTF-8 that is not
    (b"\xff\xfeh\x00i", "invalid_utf16"),  # an odd byte out
    (b"\xff\xfe\x00\x00\x00\x00\x11\x00", "invalid_utf32"),  # past U+10FFFF
], ids=["unmarked", "utf8-mark", "utf16-mark", "utf32-mark"])
def test_bytes_that_are_not_text_in_the_encoding_they_claim_are_refused_with_that_encoding_named(data, reason):
    with pytest.raises(InputError) as err:
        decode_text(data, "in.txt")
    assert err.value.reason == reason and "in.txt" in str(err.value)
    with pytest.raises(InputError) as err:
        parse_input("in.jsonl", data)
    assert err.value.reason == reason


def _eval_record(n: int, text: str) -> dict:
    """An eval run's record; its id carries the text here, since the record holds no text."""
    return EvalRecord(task="t", kind="classification", id=text, gold="x", tier="small", outcome="accepted").model_dump()


@pytest.mark.parametrize("read,row", [
    (lambda path: [i.text for i in load_labelled(path)], lambda n, text: {"id": n, "text": text, "label": "x"}),
    (lambda path: [e.text for e in read_labelled_jsonl(path)], lambda n, text: {"id": str(n), "text": text, "label": "x"}),
    (lambda path: [r.text for r in read_extraction_jsonl(path)],
     lambda n, text: {"id": str(n), "text": text, "expected": {}}),
    (lambda path: [r.id for r in read_run(path)], _eval_record),
], ids=["eval-data", "training-labels", "training-extraction", "eval-run"])
def test_every_labelled_or_run_file_reader_keeps_rows_whose_strings_hold_line_separators(tmp_path: Path, read, row):
    texts = [f"charged{c}twice" for c in SEPARATORS]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row(n, text), ensure_ascii=False) + "\n" for n, text in enumerate(texts)),
                    encoding="utf-8")
    assert read(path) == texts


def test_eval_data_saved_as_utf16_by_windows_tools_is_read(tmp_path: Path):
    path = tmp_path / "gold.jsonl"
    path.write_bytes("\ufeff{\"id\": \"1\", \"text\": \"où est ma carte\", \"label\": \"card\"}\r\n".encode("utf-16-le"))
    assert [(i.id, i.text, i.label) for i in load_labelled(path)] == [("1", "où est ma carte", "card")]
