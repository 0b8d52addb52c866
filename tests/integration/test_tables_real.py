"""Tables end to end: real pdfplumber parses of generated and shared PDFs, the real MiniLM
retrieving a row, and the verifier narrowing the citation to exactly that row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.loaders import AutoLoader, PdfLoader
from ragkit.testing.pdf import PdfPage, write_pdf

pytest.importorskip("pdfplumber")
pytestmark = pytest.mark.integration

STATES = [("Texas", "1,204", "17"), ("Ohio", "873", "9"), ("Maine", "55", "0"),
          ("Oregon", "2,310", "41"), ("Vermont", "12", "1")]  # fmt: skip


PROSE = tuple(
    f"Section {n}: the agency reviewed its procedures for handling appeals and records."
    for n in range(1, 30)
)


def test_how_many_checks_in_texas_is_answered_and_cited_from_its_row(
    tmp_path: Path, minilm: object
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(
        write_pdf([
            PdfPage(lines=("Annual report on firearm background checks.",
                           "The number of checks rose in most states this year,",
                           "while denials stayed flat.", *PROSE)),
            PdfPage(lines=("Table 1: background checks and denials by state, 2024.",),
                    table=(("State", "Checks", "Denials"), *STATES),
                    after=("Source: state police records.",)),
        ])
    )  # fmt: skip
    loader = AutoLoader({"pdf": PdfLoader(tables=True)})
    with RAG(tmp_path / "kb", embedder=minilm, loader=loader, store="memory") as rag:  # type: ignore[arg-type]
        assert rag.add(report).ok
        hits = rag.retrieve("How many checks in Texas?", k=1)
        answer = rag.ask("How many checks were there in Texas?")
    assert "State: Texas | Checks: 1,204" in hits[0].chunk.text
    assert not answer.refused, answer
    assert "1,204" in answer.text
    row = "State: Texas | Checks: 1,204 | Denials: 17"
    # Quoted whole, on a line of its own. (Which sentence comes first is the extractive
    # generator's best-first order by similarity, which may put a prose sentence first.)
    lines = answer.text.splitlines()
    assert any(re.fullmatch(re.escape(row) + r" \[\d+\]", line) for line in lines), answer.text
    document = loader.load(report)[0]
    at = document.text.index(row)
    texas = [c for c in answer.citations if c.start <= at < c.end]
    assert texas, answer
    assert row in texas[0].quote
    assert texas[0].page == 2
    assert document.text[texas[0].start : texas[0].end] == texas[0].quote


def test_real_pdfs_tables_found_and_boxed_paragraphs_left_alone(shared: Path) -> None:
    # haystack_sample_pdf_1.pdf page 1: a ruled box around a paragraph (a one-column
    # "table" to pdfplumber) and a real 4 x 5 table with an empty corner cell.
    path = shared / "docs" / "pdf" / "haystack_sample_pdf_1.pdf"
    plain = PdfLoader().load(path)[0]
    document = PdfLoader(tables=True).load(path)[0]
    assert document.metadata["tables"] == 1
    assert document.metadata["table_pages"] == [1]
    page = document.pages[0]
    lines = document.text[page.start : page.end].splitlines()
    assert "A | Column 1: 324 | Column 2: 55 million units | Column 3: 2022" in lines
    assert (
        "B | Column 1: 234,523.00 | Column 2: The quick brown fox jumped over the lazy dog. "
        "| Column 3: 54x growth"
    ) in lines
    assert any(line.startswith("Format (PDF) Adobe Systems made the PDF") for line in lines)
    # Pages without tables keep pypdf's text, offsets and all.
    for before, after in zip(plain.pages[1:], document.pages[1:], strict=True):
        assert plain.text[before.start : before.end] == document.text[after.start : after.end]
    # MTRAG's page 6 boxes a prompt: no table anywhere, the text unchanged.
    mtrag = shared / "docs" / "pdf" / "MTRAG-UN-arxiv.pdf"
    with_tables = PdfLoader(tables=True).load(mtrag)[0]
    assert with_tables.metadata["tables"] == 0
    assert with_tables.text == PdfLoader().load(mtrag)[0].text
