"""Tables as rows that keep their header names: HTML <table>, PDF ruled tables, and a
question about a number answered from its row with a citation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.analysis import split_sentences
from ragkit.chunking import RecursiveChunker
from ragkit.loaders import AutoLoader, HtmlLoader, PdfLoader
from ragkit.loaders.tables import make_table, table_lines
from ragkit.testing import FakeEmbedder
from ragkit.testing.pdf import PdfPage, write_pdf
from ragkit.types import Document

pytest.importorskip("pdfplumber")

CHECKS = (
    ("State", "Checks", "Denials"),
    ("Texas", "1,204", "17"),
    ("Ohio", "873", "9"),
    ("Maine", "55", "0"),
)


def _html(tmp_path: Path, body: str) -> Document:
    path = tmp_path / "t.html"
    path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
    return HtmlLoader().load(path)[0]


def _pdf(tmp_path: Path, pages: list[PdfPage], *, tables: bool = True) -> Document:
    path = tmp_path / "t.pdf"
    path.write_bytes(write_pdf(pages))
    return PdfLoader(tables=tables).load(path)[0]


# -- the row format -----------------------------------------------------------------------


def test_rows_keep_their_header_names() -> None:
    table = make_table(CHECKS)
    assert table is not None
    assert table_lines(table) == [
        "State: Texas | Checks: 1,204 | Denials: 17",
        "State: Ohio | Checks: 873 | Denials: 9",
        "State: Maine | Checks: 55 | Denials: 0",
    ]


def test_a_first_row_of_numbers_is_data_not_a_header() -> None:
    table = make_table([["Texas", "1,204"], ["Ohio", "873"]])
    assert table is not None
    assert table.header == ()
    assert table_lines(table) == ["Texas | 1,204", "Ohio | 873"]


def test_year_columns_still_make_a_header_and_empty_cells_are_left_out() -> None:
    table = make_table([["State", "2023", "2024"], ["Texas", "", "1,204"], [None, None, None]])
    assert table is not None
    assert table_lines(table) == ["State: Texas | 2024: 1,204"]


def test_duplicate_header_names_are_told_apart() -> None:
    table = make_table([["Name", "Q", "Q"], ["a", "1", "2"]])
    assert table is not None
    assert table_lines(table) == ["Name: a | Q: 1 | Q (2): 2"]


# -- HTML ---------------------------------------------------------------------------------


def test_html_table_rows_with_caption_and_offsets(tmp_path: Path) -> None:
    rows = "".join(f"<tr><td>{s}</td><td>{c}</td><td>{d}</td></tr>" for s, c, d in CHECKS[1:])
    doc = _html(
        tmp_path,
        "<p>Before.</p><table><caption>Checks by state</caption>"
        "<tr><th>State</th><th>Checks</th><th>Denials</th></tr>"
        f"{rows}</table><p>After.</p>",
    )
    assert doc.text == (
        "Before.\n\nChecks by state\n"
        "State: Texas | Checks: 1,204 | Denials: 17\n"
        "State: Ohio | Checks: 873 | Denials: 9\n"
        "State: Maine | Checks: 55 | Denials: 0\n\nAfter."
    )


def test_html_rowspan_and_colspan_fill_every_slot_they_cover(tmp_path: Path) -> None:
    doc = _html(
        tmp_path,
        "<table><thead><tr><th rowspan='2'>State</th><th colspan='2'>Checks</th></tr>"
        "<tr><th>Q1</th><th>Q2</th></tr></thead><tbody>"
        "<tr><td rowspan='2'>Ohio</td><td>873</td><td>900</td></tr>"
        "<tr><td colspan='2'>not reported</td></tr>"
        "<tr><td>Texas</td><td>1,204</td><td>1,310</td></tr></tbody></table>",
    )
    assert doc.text.splitlines() == [
        "State: Ohio | Checks Q1: 873 | Checks Q2: 900",
        "State: Ohio | Checks Q1: not reported | Checks Q2: not reported",
        "State: Texas | Checks Q1: 1,204 | Checks Q2: 1,310",
    ]


def test_html_nested_tables_and_hidden_rows(tmp_path: Path) -> None:
    doc = _html(
        tmp_path,
        "<table><tr><th>Item</th><th>Detail</th></tr>"
        "<tr><td>A</td><td><table><tr><td>x</td><td>y</td></tr></table></td></tr>"
        "<tr hidden><td>SECRET</td><td>row</td></tr></table>",
    )
    assert doc.text == "Item: A | Detail: x | y"


def test_html_layout_table_of_paragraphs_is_not_given_a_header(tmp_path: Path) -> None:
    long = "A long paragraph of prose that sits in a layout table cell, " * 2
    doc = _html(
        tmp_path, f"<table><tr><td>{long}</td><td>Menu</td></tr><tr><td>x</td></tr></table>"
    )
    assert doc.text.startswith("A long paragraph")
    assert ": " not in doc.text


# -- PDF ----------------------------------------------------------------------------------


def test_pdf_table_becomes_rows_with_pages_and_exact_offsets(tmp_path: Path) -> None:
    doc = _pdf(
        tmp_path,
        [
            PdfPage(lines=("Background checks by state.",)),
            PdfPage(lines=("Table 1 shows the checks of 2024.",), table=CHECKS,
                    after=("Figures are provisional.",)),
        ],
    )  # fmt: skip
    page2 = doc.pages[1]
    text2 = doc.text[page2.start : page2.end]
    assert text2 == (
        "Table 1 shows the checks of 2024.\n\n"
        "State: Texas | Checks: 1,204 | Denials: 17\n"
        "State: Ohio | Checks: 873 | Denials: 9\n"
        "State: Maine | Checks: 55 | Denials: 0\n\n"
        "Figures are provisional."
    )
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == "Background checks by state."
    assert doc.metadata["tables"] == 1
    assert doc.metadata["table_pages"] == [2]
    row = doc.text.index("State: Texas")
    assert doc.page_at(row) == page2


def test_pdf_without_tables_option_keeps_flattened_cells(tmp_path: Path) -> None:
    doc = _pdf(tmp_path, [PdfPage(table=CHECKS)], tables=False)
    assert "State: Texas" not in doc.text
    assert "Texas" in doc.text
    assert "tables" not in doc.metadata


def test_pdf_text_beside_no_table_is_unchanged_by_the_option(tmp_path: Path) -> None:
    pages = [PdfPage(lines=("Only prose here.", "Second line."))]
    assert _pdf(tmp_path, pages).text == _pdf(tmp_path, pages, tables=False).text


def test_pdf_tables_without_pdfplumber_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ragkit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pdfplumber", None)
    with pytest.raises(MissingDependencyError, match=r"ragkit\[tables\]"):
        _pdf(tmp_path, [PdfPage(table=CHECKS)])


def test_chunks_of_a_table_keep_exact_offsets(tmp_path: Path) -> None:
    many = (CHECKS[0], *((f"State{i}", f"{i * 37:,}", str(i)) for i in range(120)))
    doc = _pdf(tmp_path, [PdfPage(lines=("Intro.",)), PdfPage(table=many[:30]),
                          PdfPage(table=(many[0], *many[30:60]))])  # fmt: skip
    chunks = RecursiveChunker(chunk_size=60, chunk_overlap=10).split(doc)
    assert len(chunks) > 3
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.page == doc.page_at(chunk.start).number  # type: ignore[union-attr]
    # A row is never cut: every line of every chunk that mentions a state is whole.
    rows = set(doc.text.splitlines())
    for chunk in chunks:
        for line in chunk.text.splitlines():
            if "State: " in line:
                assert line in rows


def test_each_row_is_a_sentence() -> None:
    text = "Checks by state\nState: Texas | Checks: 1,204\nState: Ohio | Checks: 873\n\nAfter."
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Checks by state",
        "State: Texas | Checks: 1,204",
        "State: Ohio | Checks: 873",
        "After.",
    ]


# -- a question about a number ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pdf", "html"])
def test_how_many_checks_in_texas_is_answered_from_its_row(tmp_path: Path, kind: str) -> None:
    if kind == "pdf":
        path = tmp_path / "checks.pdf"
        path.write_bytes(
            write_pdf([
                PdfPage(lines=("Annual report on background checks.",
                               "Checks rose in most states this year.")),
                PdfPage(lines=("Table 1: checks by state.",), table=CHECKS),
            ])
        )  # fmt: skip
    else:
        path = tmp_path / "checks.html"
        rows = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in CHECKS)
        path.write_text(
            "<p>Annual report on background checks. Checks rose in most states.</p>"
            f"<table>{rows}</table>",
            encoding="utf-8",
        )
    loader = AutoLoader({"pdf": PdfLoader(tables=True)})
    # The verifier needs a real embedder (tests/integration/test_tables_real.py has it).
    with RAG(
        None, embedder=FakeEmbedder(), loader=loader, retrieval="keyword", verify=False
    ) as rag:
        report = rag.add(path)
        assert report.ok, report
        answer = rag.ask("How many checks in Texas?")
    row = "State: Texas | Checks: 1,204 | Denials: 17"
    assert not answer.refused
    # The extractive answer quotes the row whole, as one sentence.
    assert row in answer.text
    document = loader.load(path)[0]
    at = document.text.index(row)
    cited = [c for c in answer.citations if c.start <= at < c.end]
    assert cited, answer
    citation = cited[0]
    assert document.text[citation.start : citation.end] == citation.quote
    assert row in citation.quote
    if kind == "pdf":
        assert document.page_at(at).number == 2  # type: ignore[union-attr]
        assert citation.page is not None
        assert citation.page <= 2 <= (citation.page_end or citation.page)


def test_an_empty_corner_cell_above_row_names_still_makes_a_header() -> None:
    table = make_table([["", "Column 1", "Column 2"], ["A", "324", "55 million units"]])
    assert table is not None
    assert table_lines(table) == ["A | Column 1: 324 | Column 2: 55 million units"]


def test_quoted_rows_of_an_extractive_answer_stand_on_their_own_lines() -> None:
    from ragkit.generation import ExtractiveGenerator
    from ragkit.testing.store_contract import make_chunk
    from ragkit.types import ScoredChunk
    from ragkit.verification.claims import split_claims

    text = "Checks by state.\nState: Texas | Checks: 1,204\nState: Ohio | Checks: 873"
    hit = ScoredChunk(make_chunk("c1", text), 1.0)
    generation = ExtractiveGenerator(max_sentences=5).generate("checks Texas Ohio state", [hit])
    assert "State: Texas | Checks: 1,204 [1]\nState: Ohio | Checks: 873 [1]" in generation.text
    claims = [c.text for c in split_claims(generation.text)]
    assert "State: Texas | Checks: 1,204" in claims
    assert "State: Ohio | Checks: 873" in claims
