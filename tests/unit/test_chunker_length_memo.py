"""The chunker measures a repeated piece once, across documents, and never with stale settings."""

from __future__ import annotations

from ragkit.chunking import RecursiveChunker
from ragkit.types import Document

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
]


class CountingLength:
    def __init__(self, per_char: int = 1) -> None:
        self.calls: list[str] = []
        self.per_char = per_char

    def __call__(self, piece: str) -> int:
        self.calls.append(piece)
        return len(piece) * self.per_char


def document(name: str, repeat: int) -> Document:
    return Document(id=name, source=name, text=" ".join(WORDS * repeat))


def test_a_word_seen_in_one_document_is_not_measured_again_in_the_next() -> None:
    length = CountingLength()
    chunker = RecursiveChunker(chunk_size=30, chunk_overlap=5, length=length)
    first = chunker.split(document("a.txt", 3))
    words = {piece for piece in length.calls if piece.strip() in WORDS}
    assert {w.strip() for w in words} == set(WORDS)  # words (with their separator) measured
    length.calls.clear()
    second = chunker.split(document("b.txt", 3))
    assert not words & set(length.calls)  # every word came from the memo
    assert [(c.start, c.end) for c in second] == [(c.start, c.end) for c in first]


def test_changing_the_length_function_measures_afresh() -> None:
    chunker = RecursiveChunker(chunk_size=30, chunk_overlap=5, length=CountingLength(1))
    narrow = chunker.split(document("a.txt", 3))
    chunker.length = CountingLength(2)  # every piece now twice as long
    wide = chunker.split(document("a.txt", 3))
    assert len(wide) > len(narrow)
    assert all(c.end - c.start <= 15 for c in wide)


def test_long_pieces_that_never_repeat_do_not_flush_the_words() -> None:
    length = CountingLength()
    chunker = RecursiveChunker(chunk_size=30, chunk_overlap=5, length=length)
    chunker.split(document("a.txt", 3))
    # Over a MiB of distinct 40-character lines, each measured (and memoised) whole:
    # more than the memo keeps, so it empties on the way.
    lines = "\n".join(f"line {i:08d} " + "x" * 26 for i in range(30_000))
    assert len(lines) > 2**20
    chunker.split(Document(id="lines", source="lines.txt", text=lines))
    length.calls.clear()
    chunker.split(document("b.txt", 3))
    assert not {piece.strip() for piece in length.calls} & set(WORDS)
