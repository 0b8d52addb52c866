"""CSV, JSON / JSON Lines and .docx loaders."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from ragkit.errors import ConfigurationError, LoaderError, MissingDependencyError, NoTextError
from ragkit.loaders import CsvLoader, DocxLoader, JsonLoader
from ragkit.types import document_id


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# --- csv --------------------------------------------------------------------------

FAQ = (
    "id,question,answer,lang\r\n"
    '1,How do I reset?,"Use the link,\r\nthen log in.",en\r\n'
    "\r\n"
    "2,Wie geht das?,,de\r\n"
)


def test_csv_rows_become_documents_of_column_value_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", FAQ)

    docs = CsvLoader(metadata_columns=["lang"]).load(path)

    assert [d.text for d in docs] == [
        "id: 1\nquestion: How do I reset?\nanswer: Use the link,\r\nthen log in.\nlang: en",
        "id: 2\nquestion: Wie geht das?\nlang: de",  # the empty answer is left out
    ]
    assert [d.metadata["row"] for d in docs] == [1, 2]  # the blank line is no row
    assert [d.metadata["lang"] for d in docs] == ["en", "de"]
    assert docs[0].metadata["format"] == "csv"
    assert [d.id for d in docs] == [
        document_id(str(path), "row=1"),
        document_id(str(path), "row=2"),
    ]


def test_csv_text_columns_choose_the_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", FAQ)

    one = CsvLoader(text_columns=["question"]).load(path)
    two = CsvLoader(text_columns=["question", "answer"]).load(path)

    assert [d.text for d in one] == ["How do I reset?", "Wie geht das?"]
    assert two[1].text == "question: Wie geht das?"


def test_csv_unknown_column_names_the_columns_there_are(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", FAQ)

    with pytest.raises(LoaderError) as info:
        CsvLoader(text_columns=["body"]).load(path)

    assert "'body'" in info.value.reason
    assert "'question'" in info.value.reason


def test_csv_dialect_is_sniffed(tmp_path: Path) -> None:
    semicolons = _write(tmp_path, "a.csv", "name;city\nAda;London\nAlan;Wilmslow\n")
    tabs = _write(tmp_path, "b.tsv", "name\tcity\nAda\tLondon, UK\n")

    assert CsvLoader().load(semicolons)[1].text == "name: Alan\ncity: Wilmslow"
    assert CsvLoader().load(tabs)[0].text == "name: Ada\ncity: London, UK"


def test_csv_ragged_rows_and_blank_headers_get_column_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "a,,a\n1,2,3,4\n5\n")

    docs = CsvLoader().load(path)

    assert docs[0].text == "a: 1\ncolumn 2: 2\na (2): 3\ncolumn 4: 4"
    assert docs[1].text == "a: 5"


def test_csv_file_mode_is_one_document(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", FAQ)

    docs = CsvLoader(mode="file").load(path)

    assert len(docs) == 1
    assert docs[0].text == FAQ
    assert docs[0].id == document_id(str(path))


def test_csv_with_only_a_header_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(NoTextError):
        CsvLoader().load(_write(tmp_path, "h.csv", "a,b\n"))


def test_csv_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        CsvLoader(mode="cells")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        CsvLoader(text_columns="question")


# --- json -------------------------------------------------------------------------


def test_json_object_is_one_document(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.json", json.dumps({"title": "T", "text": "Hello"}))

    (doc,) = JsonLoader().load(path)

    assert doc.text == "Hello"
    assert doc.id == document_id(str(path))
    assert doc.metadata == {"format": "json", "title": "T"}


def test_json_list_is_one_document_per_object(tmp_path: Path) -> None:
    items = [{"text": "a"}, {"text": ""}, {"text": "c"}]
    path = _write(tmp_path, "a.json", json.dumps(items))

    docs = JsonLoader().load(path)

    assert [(d.text, d.metadata["index"]) for d in docs] == [("a", 0), ("c", 2)]
    assert len({d.id for d in docs}) == 2


def test_jsonl_is_one_document_per_line_with_nested_fields(tmp_path: Path) -> None:
    lines = [
        {"body": {"text": "first"}, "meta": {"author": "ann"}, "tags": ["x"], "n": 1},
        {"body": {"text": "second"}, "meta": {}, "tags": [], "n": 2},
    ]
    text = json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n"
    path = _write(tmp_path, "a.jsonl", text)

    loader = JsonLoader(text_field="body.text", metadata_fields=["meta.author", "tags", "n"])
    docs = loader.load(path)

    assert [d.text for d in docs] == ["first", "second"]
    assert docs[0].metadata == {
        "format": "jsonl",
        "line": 1,
        "meta.author": "ann",
        "tags": '["x"]',
        "n": 1,
    }
    assert docs[1].metadata["line"] == 3  # the blank line 2 is skipped
    assert "meta.author" not in docs[1].metadata
    assert docs[1].id == document_id(str(path), "line=3")


def test_a_bad_jsonl_line_fails_the_file_naming_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jsonl", '{"text": "ok"}\n{"text": "broken"\n{"text": "ok"}\n')

    with pytest.raises(LoaderError, match="line 2 is not valid JSON"):
        JsonLoader().load(path)


def test_missing_text_field_lists_the_keys_there_are(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jsonl", '{"body": {"html": "x", "lang": "en"}}\n')

    with pytest.raises(LoaderError) as info:
        JsonLoader(text_field="body.text").load(path)

    reason = info.value.reason
    assert reason.startswith("line 1: has no field 'body.text'")
    assert "'html', 'lang'" in reason


def test_text_field_must_be_a_string(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.json", '[{"text": ["a", "b"]}]')

    with pytest.raises(LoaderError, match="item 0: field 'text' is a JSON array"):
        JsonLoader().load(path)


def test_a_key_with_a_dot_is_taken_as_is(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.json", '{"body.text": "dotted", "body": {"text": "nested"}}')

    assert JsonLoader(text_field="body.text").load(path)[0].text == "dotted"


def test_id_field_gives_stable_ids_and_rejects_duplicates(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.jsonl", '{"id": "k1", "text": "a"}\n{"id": "k2", "text": "b"}\n')
    swapped = _write(tmp_path, "b.jsonl", '{"id": "k2", "text": "b"}\n{"id": "k1", "text": "a"}\n')
    twice = _write(tmp_path, "c.jsonl", '{"id": 7, "text": "a"}\n{"id": 7, "text": "b"}\n')

    ids = {d.text: d.id for d in JsonLoader(id_field="id").load(first)}
    swapped_docs = JsonLoader(id_field="id").load(swapped)

    assert ids == {"a": document_id(str(first), "id=k1"), "b": document_id(str(first), "id=k2")}
    assert swapped_docs[0].metadata["id"] == "k2"
    with pytest.raises(LoaderError, match="line 2: repeats id 7 of line 1"):
        JsonLoader(id_field="id").load(twice)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="invalid JSON at line 2, column 1"):
        JsonLoader().load(_write(tmp_path, "a.json", '{"text": "a",\n}'))


def test_json_with_no_text_anywhere(tmp_path: Path) -> None:
    with pytest.raises(NoTextError):
        JsonLoader().load(_write(tmp_path, "a.json", '[{"text": " "}]'))


def test_json_that_is_not_objects(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="item 1: is a JSON number, not an object"):
        JsonLoader().load(_write(tmp_path, "a.json", '[{"text": "a"}, 3]'))


# --- docx -------------------------------------------------------------------------


def _make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.add_heading("Quarterly Report", level=0)  # the "Title" style
    document.add_heading("Summary", level=1)
    document.add_paragraph("Revenue grew.")
    document.add_paragraph("   ")
    document.add_heading("Details", level=2)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Region", "Growth"), ("EU", "5%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("The end.")
    document.save(str(path))
    return path


def test_docx_paragraphs_tables_and_headings(tmp_path: Path) -> None:
    path = _make_docx(tmp_path / "report.docx")

    (doc,) = DocxLoader().load(path)

    assert doc.text == (
        "Quarterly Report\n\nSummary\n\nRevenue grew.\n\nDetails\n\n"
        "Region | Growth\nEU | 5%\n\nThe end."
    )
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Summary"), (2, "Details")]
    for heading in doc.headings:
        assert doc.text[heading.start :].startswith(heading.title)
    assert doc.metadata == {"format": "docx", "title": "Quarterly Report"}


def test_a_corrupt_docx_is_a_loader_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<not-word/>")

    with pytest.raises(LoaderError, match=r"cannot be read as a \.docx"):
        DocxLoader().load(path)


def test_docx_without_python_docx_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "docx", None)  # makes `import docx` fail

    with pytest.raises(MissingDependencyError, match=r'pip install "ragkit\[docx\]"'):
        DocxLoader().load(tmp_path / "any.docx")
