"""Jupyter rendering: answers with clickable sources and highlighted quotes, reports and
hits as tables; every piece of document text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ragkit import RAG, Document
from ragkit.testing import FakeEmbedder
from ragkit.types import FileIssue, Hits, IndexReport

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TEXT = (
    "Background.\n\nThe default timeout is five seconds. It applies to every request.\n\n"
    f"A note: {EVIL} is not markup here."
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _rag() -> RAG:
    return RAG(None, embedder=FakeEmbedder(), retrieval="keyword", verify=False)


def test_answer_html_links_markers_to_numbered_sources_with_the_quote_marked() -> None:
    with _rag() as rag:
        rag.add([Document(text=TEXT, source="notes.pdf")])
        answer = rag.ask("What is the default timeout?")
    html = answer._repr_html_()
    tags = _tags(html)
    links = [attrs["href"] for tag, attrs in tags if tag == "a"]
    items = {attrs["id"]: attrs["value"] for tag, attrs in tags if tag == "li"}
    assert links
    for href in links:  # every marker link lands on its source
        assert href is not None
        assert href[1:] in items
    assert len(items) == len(answer.citations)
    marked = re.findall(r"<mark>(.*?)</mark>", html, re.S)
    assert marked
    from html import unescape

    assert all(unescape(m) in TEXT for m in marked)
    assert "notes.pdf" in html


def test_no_html_injection_from_document_text() -> None:
    with _rag() as rag:
        rag.add([Document(text=TEXT, source="<b>evil</b>.txt")])
        answer = rag.ask("What is a note that is not markup?")
        hits = Hits(rag.retrieve("note markup", k=3))
        report = rag.add([Document(text="x", source="<i>y</i>")])
    for html in (answer._repr_html_(), hits._repr_html_(), report._repr_html_()):
        names = {tag for tag, _ in _tags(html)}
        assert not names & {"script", "img", "b", "i"}, names
        assert all(not k.startswith("on") for _, attrs in _tags(html) for k in attrs)


def test_hits_stay_a_list_of_scored_chunks_and_render_a_table() -> None:
    with _rag() as rag:
        rag.add([Document(text=TEXT, source="notes.txt")])
        hits = Hits(rag.retrieve("default timeout", k=2))
    assert isinstance(hits, list)
    assert hits == list(hits)
    html = hits._repr_html_()
    assert html.count("<tr>") == len(hits) + 1
    assert f"{hits[0].score:.3f}" in html


def test_report_html_lists_failures_and_warnings() -> None:
    report = IndexReport(
        added=("a.txt",), failed=(FileIssue("bad.pdf", "cannot be parsed <as a PDF>"),),
        warnings=(FileIssue("scan.pdf", "pages without text: 3"),), chunks_added=4,
    )  # fmt: skip
    html = report._repr_html_()
    assert "bad.pdf" in html
    assert "cannot be parsed &lt;as a PDF&gt;" in html
    assert "pages without text: 3" in html
    assert re.search(r"chunks written</th><td>4<", html)
