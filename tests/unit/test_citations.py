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
