from __future__ import annotations

import pytest

from ragkit.types import (
    Answer,
    Chunk,
    Citation,
    Document,
    Heading,
    PageSpan,
    Usage,
    chunk_id,
    document_id,
)


def test_document_id_is_derived_from_source_and_stable() -> None:
    a = Document(text="x", source="a.txt")
    b = Document(text="different text", source="a.txt")
    assert a.id == b.id == document_id("a.txt")
    assert Document(text="x", source="b.txt").id != a.id


def test_chunk_id_separates_repeated_text_by_offset() -> None:
    assert chunk_id("a", 0, "same") != chunk_id("a", 10, "same")
    assert chunk_id("a", 0, "same") == chunk_id("a", 0, "same")
    assert chunk_id("a", 0, "same") != chunk_id("b", 0, "same")


def test_page_at_finds_the_page_holding_an_offset() -> None:
    pages = (PageSpan(1, 0, 10, "i"), PageSpan(2, 12, 20, "ii"))
    doc = Document(text="x" * 20, source="p.pdf", pages=pages)
    assert doc.page_at(0) == pages[0]
    assert doc.page_at(9) == pages[0]
    assert doc.page_at(12) == pages[1]
    assert doc.page_at(19) == pages[1]
    assert Document(text="x", source="t").page_at(0) is None


def test_heading_path_follows_nesting() -> None:
    text = "# A\nx\n## B\ny\n### C\nz\n## D\nw"
    headings = (
        Heading(text.index("# A"), 1, "A"),
        Heading(text.index("## B"), 2, "B"),
        Heading(text.index("### C"), 3, "C"),
        Heading(text.index("## D"), 2, "D"),
    )
    doc = Document(text=text, source="a.md", headings=headings)
    assert doc.heading_path_at(text.index("x")) == ("A",)
    assert doc.heading_path_at(text.index("z")) == ("A", "B", "C")
    assert doc.heading_path_at(text.index("w")) == ("A", "D")
    assert doc.heading_path_at(0) == ("A",)


@pytest.mark.parametrize(
    ("page", "page_end", "label", "label_end", "expected"),
    [
        (None, None, None, None, "f.pdf"),
        (3, 3, None, None, "f.pdf, p. 3"),
        (3, 4, None, None, "f.pdf, pp. 3-4"),
        (3, 4, "iii", "iv", "f.pdf, pp. iii-iv"),
    ],
)
def test_chunk_location(
    page: int | None, page_end: int | None, label: str | None, label_end: str | None, expected: str
) -> None:
    chunk = Chunk(
        id="c",
        text="t",
        document_id="d",
        source="f.pdf",
        start=0,
        end=1,
        page=page,
        page_end=page_end,
        page_label=label,
        page_label_end=label_end,
    )
    assert chunk.location == expected


def test_records_of_csv_and_jsonl_files_are_located_by_row_and_line() -> None:
    def chunk(**metadata: object) -> Chunk:
        return Chunk(
            id="c", text="t", document_id="d", source="f", start=0, end=1, metadata=metadata
        )

    assert chunk(row=4).location == "f, row 4"
    assert chunk(line=9).location == "f, line 9"
    assert chunk(index=0).location == "f, record 0"
    assert chunk(row="not a number").location == "f"


def test_answer_str_lists_sources_with_pages() -> None:
    cit = Citation(marker=1, chunk_id="c", source="rfc.pdf", start=5, end=9, quote="text", page=7)
    answer = Answer(question="q", text="It is so [1].", citations=(cit,))
    out = str(answer)
    assert out.startswith("It is so [1].")
    assert "[1] rfc.pdf, p. 7 (chars 5-9)" in out
    assert answer.to_dict()["citations"][0]["page"] == 7


def test_usage_is_read_from_the_wire_only_when_well_formed() -> None:
    usage = Usage.from_wire({"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150})
    assert usage == Usage(120, 30)
    assert usage.total_tokens == 150
    for bad in (None, {}, {"prompt_tokens": 3}, {"prompt_tokens": "3", "completion_tokens": 1},
                {"prompt_tokens": -1, "completion_tokens": 1},
                {"prompt_tokens": True, "completion_tokens": 1}, [3, 1]):  # fmt: skip
        assert Usage.from_wire(bad) is None, bad


def test_an_answers_usage_goes_through_the_python_clients_wire() -> None:
    from ragkit.client._wire import parse_answer

    answer = Answer(question="q", text="It is so [1].", usage=Usage(80, 5))
    assert answer.to_dict()["usage"] == {"prompt_tokens": 80, "completion_tokens": 5}
    assert parse_answer(answer.to_dict()).usage == Usage(80, 5)
    assert parse_answer(Answer(question="q", text="t").to_dict()).usage is None
