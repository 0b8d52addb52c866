from __future__ import annotations

from collections.abc import Sequence

import pytest

from ragkit import Answer, RetrievalQA
from ragkit.errors import ConfigurationError
from ragkit.generation import CompletionGenerator, ExtractiveGenerator
from ragkit.protocols import Filters, Generator, Reranker, Retriever
from ragkit.testing import FakeGenerator
from ragkit.types import Chunk, ScoredChunk


class ListRetriever:
    """A user's own retriever: no ragkit base class."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.hits = [
            ScoredChunk(
                Chunk(id=f"c{i}", text=t, document_id="d", source=f"s{i}.txt", start=0, end=len(t)),
                1.0 - i / 10,
            )
            for i, t in enumerate(texts)
        ]
        self.calls: list[tuple[str, int, Filters | None]] = []

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        self.calls.append((query, k, filters))
        return self.hits[:k]


class ReverseReranker:
    def rerank(self, query: str, hits: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        return list(reversed(hits))[:k]


def test_user_classes_fit_the_protocols_without_inheriting() -> None:
    assert isinstance(ListRetriever([]), Retriever)
    assert isinstance(ReverseReranker(), Reranker)
    assert isinstance(FakeGenerator(), Generator)


def test_ask_retrieves_generates_and_cites() -> None:
    retriever = ListRetriever(["alpha text", "beta text", "gamma text"])
    qa = RetrievalQA(retriever, FakeGenerator(cite=(2,)), k=2)
    answer = qa.ask("question?", filters={"source": "s1.txt"})
    assert retriever.calls == [("question?", 2, {"source": "s1.txt"})]
    assert answer.text == "Answer from the context [2]."
    assert [(c.marker, c.chunk_id, c.quote) for c in answer.citations] == [(2, "c1", "beta text")]
    assert len(answer.contexts) == 2


def test_invalid_markers_are_removed_and_reported() -> None:
    qa = RetrievalQA(ListRetriever(["only one"]), FakeGenerator(cite=(1, 5)))
    answer = qa.ask("q")
    assert answer.text == "Answer from the context [1]."
    assert answer.invalid_markers == (5,)
    assert [c.marker for c in answer.citations] == [1]


def test_reranker_sees_fetch_k_candidates_and_keeps_k() -> None:
    retriever = ListRetriever([f"text {i}" for i in range(10)])
    qa = RetrievalQA(retriever, FakeGenerator(), ReverseReranker(), k=2, fetch_k=6)
    hits = qa.retrieve("q")
    assert retriever.calls[-1][1] == 6
    assert [h.chunk.id for h in hits] == ["c5", "c4"]


def test_k_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        RetrievalQA(ListRetriever([]), FakeGenerator(), k=0)
    with pytest.raises(ConfigurationError, match="fetch_k"):
        RetrievalQA(ListRetriever([]), FakeGenerator(), fetch_k=0)
    with pytest.raises(ConfigurationError):
        RetrievalQA(ListRetriever([]), FakeGenerator()).ask("q", k=0)


def test_stream_yields_deltas_then_answer_with_citations() -> None:
    gen = CompletionGenerator(lambda p: "", stream=lambda p: iter(["It is ", "alpha [1]", " [9]."]))
    qa = RetrievalQA(ListRetriever(["alpha text"]), gen)
    items = list(qa.stream("q"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert "".join(items[:-1]) == answer.text == "It is alpha [1]."  # [9] never sent
    assert answer.invalid_markers == (9,)
    assert answer.citations[0].quote == "alpha text"


def test_stream_works_for_generators_without_stream() -> None:
    qa = RetrievalQA(ListRetriever(["The sky is blue today."]), ExtractiveGenerator())
    items = list(qa.stream("what colour is the sky"))
    assert items[0] == "The sky is blue today. [1]"
    assert isinstance(items[-1], Answer)
    assert items[-1].extractive
