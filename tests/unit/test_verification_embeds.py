"""What the verifier embeds: each passage sentence and claim once per question, and
nothing into a knowledge base's embedding cache.

The cache (``embeddings.sqlite``) holds chunk vectors for indexing. Questions, answers
and passage sentences are not chunks: caching them would grow the file with every
question and make a read-only ``ask`` write to disk.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit import RAG, Answer, RetrievalQA
from ragkit.chunking import RecursiveChunker
from ragkit.generation import CompletionGenerator
from ragkit.protocols import Generator
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, ScoredChunk
from ragkit.verification import CitationVerifier

# Two overlapping chunks: the second repeats the last sentence of the first.
FIRST = "Intro here. The default timeout is five seconds. Retries wait twice as long."
SECOND = "Retries wait twice as long. The pool holds twenty connections."
HITS = [
    ScoredChunk(Chunk(id=f"c{n}", text=t, document_id="d", source="a.md", start=0, end=len(t)), s)
    for n, (t, s) in enumerate([(FIRST, 0.9), (SECOND, 0.8)], 1)
]
ANSWER = "The default timeout is five seconds [1]. Retries wait twice as long [2]. It is raised."
QUESTION = "What is the default timeout in seconds?"
# Every distinct passage sentence and claim, written out by hand.
DISTINCT = {
    "Intro here.",
    "The default timeout is five seconds.",
    "Retries wait twice as long.",
    "The pool holds twenty connections.",
    "It is raised.",
}


class RecordingEmbedder(FakeEmbedder):
    """Remembers every text it was asked to embed as a document."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.documents.extend(texts)
        return super().embed_documents(texts)


class Fixed:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return HITS[:k]


def _chain(embedder: RecordingEmbedder) -> RetrievalQA:
    generator = CompletionGenerator(lambda prompt: ANSWER)
    return RetrievalQA(Fixed(), generator, verifier=CitationVerifier(embedder))


def test_ask_embeds_each_sentence_once() -> None:
    embedder = RecordingEmbedder()
    answer = _chain(embedder).ask(QUESTION)
    assert [c.source for c in answer.citations] == ["a.md", "a.md"]  # verified, not refused
    assert answer.unsupported == ("It is raised.",)
    assert Counter(embedder.documents) == dict.fromkeys(DISTINCT, 1)


def test_stream_embeds_each_sentence_once() -> None:
    embedder = RecordingEmbedder()
    *_, answer = _chain(embedder).stream(QUESTION)
    assert isinstance(answer, Answer)
    assert len(answer.citations) == 2
    assert Counter(embedder.documents) == dict.fromkeys(DISTINCT, 1)


def test_the_memo_lasts_one_question() -> None:
    embedder = RecordingEmbedder()
    qa = _chain(embedder)
    qa.ask(QUESTION)
    qa.ask(QUESTION)
    assert Counter(embedder.documents) == dict.fromkeys(DISTINCT, 2)


def test_a_shared_memo_gives_the_same_verdict_as_none() -> None:
    from ragkit.citations import answer_from_generation
    from ragkit.types import Generation

    verifier = CitationVerifier(FakeEmbedder())
    answer = answer_from_generation(QUESTION, Generation(text=ANSWER, contexts=tuple(HITS)))
    memo: dict[str, NDArray[np.float32]] = {}
    gate = verifier.relevance(QUESTION, HITS, memo)
    assert set(memo) == DISTINCT - {"It is raised."}  # the passage sentences
    assert gate == verifier.relevance(QUESTION, HITS)
    assert verifier.verify(answer, memo) == verifier.verify(answer)


# -- RAG: the knowledge base's cache --------------------------------------------

DOCS = {
    "timeouts.md": "The default timeout is five seconds. Retries wait twice as long.\n",
    "pool.txt": "The connection pool holds twenty connections per host. Idle ones close.\n",
}
QUESTIONS = [
    "What is the default timeout?",
    "How long do retries wait?",
    "How many connections does the pool hold per host?",
]


def _llm_like(prompt: str) -> str:
    """A new sentence per question, as a language model writes: quotes plus a comment."""
    if "pool" in prompt.rsplit("Question:", 1)[-1]:
        return "The connection pool holds twenty connections per host [1]. Plenty for most."
    return "The default timeout is five seconds [1]. Retries wait twice as long [1]. Sensible."


def _docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _rows(kb: Path) -> int:
    with closing(sqlite3.connect(kb / "embeddings.sqlite")) as db:
        count: int = db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    return count


@pytest.mark.parametrize(
    "generator", [None, CompletionGenerator(_llm_like)], ids=["extractive", "llm"]
)
def test_asking_leaves_the_embedding_cache_unchanged(
    tmp_path: Path, generator: Generator | None
) -> None:
    folder = _docs(tmp_path)
    kb = tmp_path / "kb"
    chunker = RecursiveChunker(chunk_size=200, chunk_overlap=0, length="characters")
    with RAG(
        kb, embedder=FakeEmbedder(), store="memory", chunker=chunker, generator=generator
    ) as rag:
        report = rag.add(folder)
        indexed = _rows(kb)
        assert indexed == report.chunks_added == 2  # the cache holds the chunk vectors
        for question in QUESTIONS:
            answer = rag.ask(question)
            assert answer.citations, answer  # answered and verified, not refused
            *_, streamed = rag.stream(question)
            assert streamed == answer
        assert _rows(kb) == indexed


def test_generator_and_verifier_embed_a_passage_sentence_once_between_them(
    tmp_path: Path,
) -> None:
    """Without a cache they must share vectors: embedding the passages twice made an
    extractive ask on SQuAD about 1.8 times slower."""
    embedder = RecordingEmbedder()
    chunker = RecursiveChunker(chunk_size=200, chunk_overlap=0, length="characters")
    with RAG(tmp_path / "kb", embedder=embedder, store="memory", chunker=chunker) as rag:
        rag.add(_docs(tmp_path))
        embedder.documents.clear()
        answer = rag.ask("What is the default timeout?")  # the extractive default
    assert answer.citations
    assert "The default timeout is five seconds." in embedder.documents
    assert max(Counter(embedder.documents).values()) == 1
