"""The contract every retriever must pass, as a pytest class to subclass.

Subclass :class:`RetrieverContract` in a test module named ``test_*.py``, with a class
name that starts with ``Test``, and provide a ``build`` fixture: a function that indexes
the chunks it is given and returns a retriever over exactly those chunks::

    import pytest
    from ragkit.testing.retriever_contract import RetrieverContract

    class TestMyRetriever(RetrieverContract):
        @pytest.fixture
        def build(self):
            def build(chunks):
                index = MyIndex()
                index.add(chunks)
                return MyRetriever(index)

            return build

The chunks are short English sentences, so both embedding and keyword retrievers
find them (with :class:`ragkit.testing.FakeEmbedder`, or a real model). This module
needs pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from ragkit.protocols import Retriever
from ragkit.testing.store_contract import make_chunk
from ragkit.types import Chunk, ScoredChunk

__all__ = ["Build", "RetrieverContract", "sample_chunks"]

#: Indexes the chunks it is given and returns a retriever over them.
Build = Callable[[Sequence[Chunk]], Retriever]

_TOPICS = (
    "The default request timeout is five seconds",
    "Retries back off exponentially after a failed request",
    "The connection pool keeps twenty connections per host",
    "Proxies are configured with an environment variable",
    "Certificates are verified against the system trust store",
    "Cookies persist across requests in a client session",
)


def sample_chunks() -> list[Chunk]:
    """Twelve chunks: each topic twice, in ``guide.md`` and ``faq.md``, with metadata."""
    chunks = []
    for i, topic in enumerate(_TOPICS):
        for source, lang in (("guide.md", "en"), ("faq.md", "de")):
            chunks.append(
                make_chunk(
                    f"{source}-{i}",
                    f"{topic} ({source}).",
                    source=source,
                    metadata={"lang": lang, "topic": i},
                )
            )
    return chunks


def _ids(hits: Sequence[ScoredChunk]) -> list[str]:
    return [h.chunk.id for h in hits]


class RetrieverContract:
    """Behaviour every :class:`~ragkit.protocols.Retriever` must show.

    Subclasses provide the ``build`` fixture (see the module docstring).
    """

    query = "How many connections does the pool keep per host?"

    @pytest.fixture
    def build(self) -> Build:
        raise NotImplementedError("provide a `build` fixture that returns a Build function")

    @pytest.fixture
    def retriever(self, build: Build) -> Retriever:
        return build(sample_chunks())

    def test_fits_the_protocol(self, retriever: Retriever) -> None:
        assert isinstance(retriever, Retriever)

    def test_empty_index_returns_nothing(self, build: Build) -> None:
        assert build([]).retrieve(self.query, k=5) == []

    def test_k_is_respected(self, retriever: Retriever) -> None:
        for k in (1, 3):
            hits = retriever.retrieve(self.query, k=k)
            assert 1 <= len(hits) <= k
        assert retriever.retrieve(self.query, k=0) == []

    def test_best_first_without_duplicates(self, retriever: Retriever) -> None:
        hits = retriever.retrieve(self.query, k=6)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(set(_ids(hits))) == len(hits)

    def test_relevant_chunk_ranks_first(self, retriever: Retriever) -> None:
        hits = retriever.retrieve("connection pool connections per host", k=2)
        assert {h.chunk.id for h in hits} == {"guide.md-2", "faq.md-2"}

    def test_returns_the_indexed_chunks_unchanged(self, retriever: Retriever) -> None:
        indexed = {c.id: c for c in sample_chunks()}
        for hit in retriever.retrieve(self.query, k=4):
            assert isinstance(hit, ScoredChunk)
            assert hit.chunk == indexed[hit.chunk.id]

    def test_filters_are_honoured(self, retriever: Retriever) -> None:
        hits = retriever.retrieve(self.query, k=3, filters={"source": "faq.md"})
        assert hits
        assert {h.chunk.source for h in hits} == {"faq.md"}
        hits = retriever.retrieve(self.query, k=5, filters={"topic": {"$in": [0, 1]}})
        assert {h.chunk.metadata["topic"] for h in hits} <= {0, 1}

    def test_filters_apply_before_the_top_k_cut(self, retriever: Retriever) -> None:
        # The query is mostly about the pool (topic 2); the filter keeps one weaker
        # match. Filtering after a top-1 cut would return nothing.
        query = "connection pool connections per host timeout"
        hits = retriever.retrieve(query, k=1, filters={"source": "faq.md", "topic": 0})
        assert _ids(hits) == ["faq.md-0"]
        hits = retriever.retrieve(query, k=2, filters={"topic": {"$ne": 2}})
        assert len(hits) == 2
        assert all(h.chunk.metadata["topic"] != 2 for h in hits)

    def test_filter_matching_nothing_returns_nothing(self, retriever: Retriever) -> None:
        assert retriever.retrieve(self.query, k=3, filters={"source": "missing.md"}) == []
