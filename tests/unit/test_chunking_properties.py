"""Properties of RecursiveChunker on any text (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragkit.chunking import RecursiveChunker
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Document, Heading, PageSpan

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def texts_of(chunks: Sequence[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def check_spans(document: Document, chunks: Sequence[Chunk]) -> None:
    """Exact spans, stripped and non-empty, starts increasing, all non-whitespace covered."""
    text = document.text
    covered = [False] * len(text)
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text != ""
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())


def same_as_langchain(ours: Sequence[str], theirs: Sequence[str]) -> bool:
    """``ours`` is LangChain's list less chunks that begin the next (see test_chunking)."""
    theirs = [t.strip() for t in theirs if t.strip()]
    reachable = {0}
    for i, chunk in enumerate(theirs):
        droppable = i + 1 < len(theirs) and theirs[i + 1].startswith(chunk)
        reachable = {j + 1 for j in reachable if j < len(ours) and ours[j] == chunk} | (
            reachable if droppable else set()
        )
    return len(ours) in reachable


# Bits that make separators, repeats and whitespace likely, plus any (surrogate-free)
# unicode, Unicode whitespace that str.strip() knows, and words no separator cuts.
BITS = st.sampled_from(
    ["a", "aaaa", "ab", " ", "  ", "\n", "\n\n", "\t", "\r\n", "\u2028", "\x85", "\u3000",
     "# ", "\n## ", "```\n", "\n---\n", "\n***\n", "é", "😀", "<|endoftext|>", "x" * 40]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(BITS, st.text(max_size=5)), max_size=80).map("".join),
)
SIZES = st.integers(min_value=1, max_value=40).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(min_value=0, max_value=size - 1))
)
KEEP = st.sampled_from([True, False, "start", "end"])


@PROPERTIES
@given(
    text=TEXTS,
    sizes=SIZES,
    length=st.sampled_from(["characters", "tokens"]),
    markdown=st.booleans(),
    keep=KEEP,
)
def test_every_chunk_is_its_span_of_the_document(
    text: str, sizes: tuple[int, int], length: Any, markdown: bool, keep: Any
) -> None:
    size, overlap = sizes
    doc = Document(text=text, source="p")
    chunker = RecursiveChunker(size, overlap, length=length, markdown=markdown,
                               keep_separator=keep)  # fmt: skip
    chunks = chunker.split(doc)
    if keep is False and markdown:
        # Separators that are not whitespace ("#", "```") may fall between chunks.
        for c in chunks:
            assert text[c.start : c.end] == c.text == c.text.strip() != ""
        assert [c.start for c in chunks] == sorted({c.start for c in chunks})
    else:
        check_spans(doc, chunks)
    assert [c.end for c in chunks] == sorted(c.end for c in chunks)
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    if length == "characters":  # lengths add up exactly, so no chunk is too long
        assert all(len(c.text) <= size for c in chunks)


WORDS = st.lists(
    st.sampled_from(["a", "bb", "ccc", "dddd", "eeeeeeee", " ", " ", " ", "\n", "\n\n", "  "]),
    max_size=120,
).map("".join)


@PROPERTIES
@given(text=WORDS, sizes=SIZES.filter(lambda s: s[0] >= 2))
def test_chunk_texts_are_langchains_in_characters(text: str, sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    chunks = RecursiveChunker(size, overlap, length="characters").split(Document(text, "w"))
    lc = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    assert same_as_langchain(texts_of(chunks), lc.split_text(text))


@settings(max_examples=100, deadline=None)
@given(text=WORDS, sizes=SIZES.filter(lambda s: s[0] >= 2))
def test_chunk_texts_are_langchains_in_tokens(text: str, sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    chunks = RecursiveChunker(size, overlap, length="tokens").split(Document(text, "w"))
    lc = RecursiveCharacterTextSplitter(
        chunk_size=size, chunk_overlap=overlap, length_function=count_tokens
    )
    assert same_as_langchain(texts_of(chunks), lc.split_text(text))


@st.composite
def paginated(draw: st.DrawFn) -> Document:
    text = draw(TEXTS)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=8)))
    bounds = [*cuts, len(text)]
    pages = tuple(
        PageSpan(number=i + 1, start=start, end=end, label=draw(st.none() | st.just(f"p{i}")))
        for i, (start, end) in enumerate(pairwise(bounds))
    )
    heading_starts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=5)))
    headings = tuple(
        Heading(start=start, level=draw(st.integers(1, 3)), title=f"h{i}")
        for i, start in enumerate(heading_starts)
    )
    return Document(text=text, source="book.pdf", pages=pages, headings=headings)


@PROPERTIES
@given(doc=paginated(), sizes=SIZES, length=st.sampled_from(["characters", "tokens"]))
def test_pages_and_heading_paths_agree_with_the_document(
    doc: Document, sizes: tuple[int, int], length: Any
) -> None:
    chunks = RecursiveChunker(*sizes, length=length).split(doc)
    check_spans(doc, chunks)
    for c in chunks:
        first, last = doc.page_at(c.start), doc.page_at(c.end - 1)
        assert first is not None
        assert last is not None
        assert (c.page, c.page_label) == (first.number, first.label)
        assert (c.page_end, c.page_label_end) == (last.number, last.label)
        if doc.headings:
            assert c.metadata["heading_path"] == " > ".join(doc.heading_path_at(c.start))
        else:
            assert "heading_path" not in c.metadata
