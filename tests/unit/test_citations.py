from __future__ import annotations

from ragkit.citations import answer_from_generation, cite
from ragkit.types import Chunk, Generation, ScoredChunk


def _hit(n: int, page: int | None = None) -> ScoredChunk:
    chunk = Chunk(
        id=f"c{n}",
        text=f"text {n}",
        document_id="d",
        source=f"s{n}.txt",
        start=10 * n,
        end=10 * n + 6,
        page=page,
        page_end=page,
    )
    return ScoredChunk(chunk, 1.0 / n)


def test_valid_markers_become_citations_in_marker_order() -> None:
    contexts = (_hit(1), _hit(2, page=4), _hit(3))
    gen = Generation(text="B is true [2]. A too [1].", contexts=contexts, model="m")
    answer = answer_from_generation("q", gen)
    assert answer.text == "B is true [2]. A too [1]."
    assert [c.marker for c in answer.citations] == [1, 2]
    second = answer.citations[1]
    assert (second.chunk_id, second.source, second.start, second.end) == ("c2", "s2.txt", 20, 26)
    assert second.quote == "text 2"
    assert second.page == 4
    assert answer.invalid_markers == ()


def test_markers_pointing_nowhere_are_removed_and_reported() -> None:
    contexts = (_hit(1),)
    text, valid, invalid = cite("Claim [1]. Made up [7]. Zero [0].", contexts)
    assert text == "Claim [1]. Made up. Zero."
    assert valid == [1]
    assert invalid == [7, 0]


def test_comma_lists_are_split_and_partly_kept() -> None:
    contexts = (_hit(1), _hit(2))
    text, valid, invalid = cite("Both [1, 2, 9].", contexts)
    assert text == "Both [1][2]."
    assert valid == [1, 2]
    assert invalid == [9]


def test_no_markers_no_citations() -> None:
    answer = answer_from_generation("q", Generation(text="Plain.", contexts=(_hit(1),)))
    assert answer.citations == ()
    assert answer.text == "Plain."


def test_citation_narrows_to_the_quoted_sentence_with_document_offsets() -> None:
    doc_text = "Intro line. Pools hold ten connections. The default timeout is five seconds. Bye."
    start = doc_text.index("Pools")
    chunk_text = doc_text[start:]
    chunk = Chunk(
        id="c1", text=chunk_text, document_id="d", source="a.md", start=start, end=len(doc_text)
    )
    gen = Generation(
        text="The default timeout is five seconds. [1]", contexts=(ScoredChunk(chunk, 1.0),)
    )
    citation = answer_from_generation("q", gen).citations[0]
    assert citation.quote == "The default timeout is five seconds."
    assert doc_text[citation.start : citation.end] == citation.quote


def test_claims_far_from_any_sentence_cite_the_whole_chunk() -> None:
    contexts = (_hit(1),)
    gen = Generation(text="Something unrelated entirely [1].", contexts=contexts)
    citation = answer_from_generation("q", gen).citations[0]
    assert (citation.start, citation.end, citation.quote) == (10, 16, "text 1")


def test_two_claims_on_one_marker_span_both_sentences() -> None:
    text = "Alpha is first. Beta is second. Gamma is third."
    chunk = Chunk(id="c", text=text, document_id="d", source="s", start=100, end=100 + len(text))
    gen = Generation(
        text="Gamma is third [1]. Alpha is first [1].", contexts=(ScoredChunk(chunk, 1.0),)
    )
    citation = answer_from_generation("q", gen).citations[0]
    assert citation.quote == text
    assert (citation.start, citation.end) == (100, 100 + len(text))
