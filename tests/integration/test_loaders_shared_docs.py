"""The loaders on the real documents in ``shared/docs`` (see its README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragkit.errors import NoTextError
from ragkit.loaders import AutoLoader, HtmlLoader, MarkdownLoader, PdfLoader, TextLoader, walk

pytestmark = pytest.mark.integration

SHARED = Path(
    os.environ.get("RAGKIT_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
DOCS = SHARED / "docs"
SCANNED = "pdf/haystack_non_text_searchable.pdf"


@pytest.fixture(scope="module")
def docs() -> Path:
    if not DOCS.is_dir():
        pytest.skip(f"shared documents not found at {DOCS} (set RAGKIT_SHARED)")
    return DOCS


def _page_texts(path: Path) -> list[str]:
    doc = PdfLoader().load(path)[0]
    return [doc.text[p.start : p.end] for p in doc.pages]


def test_every_shared_document_loads_except_the_scanned_pdf(docs: Path) -> None:
    loader = AutoLoader()
    paths = list(walk(docs))
    assert len(paths) >= 30  # 5 PDFs, 1 HTML, 23+ Markdown pages, 1 text, README

    for path in paths:
        rel = path.relative_to(docs).as_posix()
        if rel == SCANNED:
            continue
        loaded = loader.load(path)
        assert loaded, rel
        for doc in loaded:
            assert doc.text.strip(), rel
            assert doc.source == str(path)
            assert doc.metadata["format"] in {"pdf", "html", "markdown", "text"}, rel


def test_the_scanned_pdf_is_refused_not_indexed_empty(docs: Path) -> None:
    with pytest.raises(NoTextError, match=r"no text layer .* run OCR first"):
        AutoLoader().load(docs / SCANNED)


def test_rfc2616_pdf_page_n_holds_its_page_n_footer(docs: Path) -> None:
    pages = _page_texts(docs / "pdf/rfc2616.pdf")

    assert len(pages) == 176
    for number, text in enumerate(pages, start=1):
        assert f"[Page {number}]" in text, number


def test_haystack_sample_pdf_pages(docs: Path) -> None:
    doc = PdfLoader().load(docs / "pdf/haystack_sample_pdf_1.pdf")[0]
    pages = [doc.text[p.start : p.end] for p in doc.pages]

    assert len(pages) == 4
    # Page 1 carries no footer in this file and page 3 is blank (page 4 says so).
    assert "A sample PDF" in pages[0]
    assert "Page 2 of" in pages[1]
    assert "Page 4 of" in pages[3]
    assert pages[2] == ""
    assert doc.metadata["pages_without_text"] == [3]


def test_scotus_transcript_has_a_printed_page_label(docs: Path) -> None:
    doc = PdfLoader().load(docs / "pdf/scotus-transcript-p1.pdf")[0]

    assert [p.label for p in doc.pages] == ["1"]  # the file defines /PageLabels


def test_rfc2616_text_pages_split_at_form_feeds(docs: Path) -> None:
    doc = TextLoader().load(docs / "text/rfc2616.txt")[0]

    assert len(doc.pages) == 176
    for page in doc.pages:
        assert f"[Page {page.number}]" in doc.text[page.start : page.end]
    assert doc.text == (docs / "text/rfc2616.txt").read_text(encoding="utf-8")


def test_httpx_markdown_pages_have_headings(docs: Path) -> None:
    pages = sorted((docs / "markdown/httpx-docs").rglob("*.md"))
    loaded = {p.name: MarkdownLoader().load(p)[0] for p in pages}

    assert len(loaded) >= 23
    with_headings = [name for name, doc in loaded.items() if doc.headings]
    assert len(with_headings) >= 18
    for doc in loaded.values():
        for heading in doc.headings:  # each starts a line that shows its title
            assert heading.start == 0 or doc.text[heading.start - 1] == "\n"
            line = doc.text[heading.start :].split("\n", 1)[0]
            assert line.startswith("#" * heading.level + " ")
            assert heading.title.split()[0] in line.replace("`", "")
    quickstart = loaded["quickstart.md"]
    assert quickstart.metadata["title"] == "QuickStart"
    assert "Passing Parameters in URLs" in [h.title for h in quickstart.headings]
    # "# Uploading text, ..." is a comment inside a fenced Python block.
    titles = [h.title for h in loaded["compatibility.md"].headings]
    assert "Request Content" in titles
    assert not [t for t in titles if t.startswith("Uploading")]


def test_rfc9110_html_loads_with_title_and_headings(docs: Path) -> None:
    doc = HtmlLoader().load(docs / "html/rfc9110.html")[0]
    assert doc.metadata["title"] == "RFC 9110 - HTTP Semantics"
    assert len(doc.headings) > 200
    titles = [h.title for h in doc.headings]
    assert "1. Introduction" in titles
    assert "HTTP Semantics" in titles
    for heading in doc.headings:
        assert doc.text[heading.start :].startswith(heading.title)
    # The page's scripts hold this code; none of it may reach the text.
    for script_text in (
        "buttonsAdded",
        "XMLHttpRequest",
        "function feedback",
        "getElementsByTagName",
    ):
        assert script_text not in doc.text
    assert "The Hypertext Transfer Protocol (HTTP) is a stateless" in doc.text
