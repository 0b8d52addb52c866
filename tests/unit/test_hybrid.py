"""Hybrid retrieval and normalized score fusion, checked by hand."""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Sequence

import pytest

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters
from ragkit.retrieval import (
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    KeywordIndex,
    normalized_score_fusion,
    reciprocal_rank_fusion,
)
from ragkit.stores import MemoryStore
from ragkit.testing import FakeEmbedder
from ragkit.testing.store_contract import make_chunk
from ragkit.types import ScoredChunk


def _hits(*pairs: tuple[str, float]) -> list[ScoredChunk]:
    return [ScoredChunk(make_chunk(i), s) for i, s in pairs]


def _scores(hits: Sequence[ScoredChunk]) -> dict[str, float]:
    return {h.chunk.id: h.score for h in hits}


DENSE = _hits(("a", 0.9), ("b", 0.5), ("c", 0.1))
KEYWORD = _hits(("c", 10.0), ("d", 4.0))


def test_minmax_fusion_by_hand() -> None:
    # dense -> a 1, b 0.5, c 0; keyword -> c 1, d 0; a chunk missing from a list gets 0.
    fused = normalized_score_fusion([DENSE, KEYWORD], weights=[0.5, 0.5])
    assert _scores(fused) == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.0})
    assert [h.chunk.id for h in fused] == ["a", "c", "b", "d"]  # a and c tie: by id
    fused = normalized_score_fusion([DENSE, KEYWORD], weights=[0.2, 0.8], limit=2)
    assert _scores(fused) == pytest.approx({"c": 0.8, "a": 0.2})
    assert [h.chunk.id for h in fused] == ["c", "a"]


def test_zscore_fusion_by_hand() -> None:
    # dense: mean 0.5, population std sqrt(0.32/3); keyword: mean 7, std 3.
    std = math.sqrt((0.16 + 0.0 + 0.16) / 3)
    za, zb, zc = 0.4 / std, 0.0, -0.4 / std
    fused = normalized_score_fusion([DENSE, KEYWORD], method="zscore")
    assert _scores(fused) == pytest.approx(
        {"a": za + (-1.0), "b": zb + (-1.0), "c": zc + 1.0, "d": zc + (-1.0)}
    )  # missing from a list: that list's lowest z-score


def test_fusion_edge_cases() -> None:
    single = normalized_score_fusion([_hits(("x", 3.0)), []])
    assert _scores(single) == {"x": 1.0}
    flat = normalized_score_fusion([_hits(("x", 2.0), ("y", 2.0)), _hits(("z", 1.0))])
    assert _scores(flat) == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert _scores(normalized_score_fusion([_hits(("x", 2.0), ("y", 2.0))], method="zscore")) == {
        "x": 0.0,
        "y": 0.0,
    }
    assert normalized_score_fusion([[], []]) == []
    with pytest.raises(ConfigurationError, match="weights"):
        normalized_score_fusion([DENSE], weights=[1.0, 2.0])
    with pytest.raises(ConfigurationError, match="normalization"):
        normalized_score_fusion([DENSE], method="softmax")  # type: ignore[arg-type]


class _Fixed:
    """A retriever that returns fixed hits and records how it was called."""

    def __init__(self, hits: list[ScoredChunk]) -> None:
        self.hits = hits
        self.calls: list[tuple[str, int, Filters | None]] = []

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        self.calls.append((query, k, filters))
        return self.hits[:k]


def test_hybrid_fetches_candidates_and_fuses_with_rrf() -> None:
    dense, keyword = _Fixed(DENSE), _Fixed(KEYWORD)
    hybrid = HybridRetriever(dense, keyword, fusion="rrf", weights=(1, 1), candidates=20)
    hits = hybrid.retrieve("q", k=2, filters={"lang": "en"})
    assert dense.calls == keyword.calls == [("q", 20, {"lang": "en"})]
    # rrf, k=60: a 1/61, b 1/62, c 1/63 + 1/61, d 1/62.
    assert _scores(hits) == pytest.approx({"c": 1 / 63 + 1 / 61, "a": 1 / 61})
    assert [h.chunk.id for h in hits] == ["c", "a"]
    assert hits == reciprocal_rank_fusion([DENSE, KEYWORD], limit=2)
    hybrid.retrieve("q", k=30)
    assert dense.calls[-1] == ("q", 30, None)  # never fewer candidates than k
    assert hybrid.retrieve("q", k=0) == []


def test_hybrid_default_is_equal_weight_minmax_fusion() -> None:
    dense, keyword = _Fixed(DENSE), _Fixed(KEYWORD)
    hits = HybridRetriever(dense, keyword).retrieve("q", k=3)
    assert _scores(hits) == pytest.approx({"a": 0.5, "c": 0.5, "b": 0.25})
    assert [h.chunk.id for h in hits] == ["a", "c", "b"]
    assert dense.calls == [("q", 50, None)]


def test_hybrid_weighted_fusion_and_weights() -> None:
    hybrid = HybridRetriever(
        _Fixed(DENSE), _Fixed(KEYWORD), fusion="weighted", weights=(0.2, 0.8), candidates=5
    )
    assert _scores(hybrid.retrieve("q", k=2)) == pytest.approx({"c": 0.8, "a": 0.2})
    rrf = HybridRetriever(_Fixed(DENSE), _Fixed(KEYWORD), fusion="rrf", weights=(0.0, 1.0), rrf_k=0)
    assert _scores(rrf.retrieve("q", k=2)) == pytest.approx({"c": 1.0, "d": 0.5})
    zscore = HybridRetriever(_Fixed(DENSE), _Fixed(KEYWORD), normalization="zscore")
    assert zscore.retrieve("q", k=4) == normalized_score_fusion(
        [DENSE, KEYWORD], weights=[0.5, 0.5], method="zscore", limit=4
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fusion": "max"}, "fusion"),
        ({"weights": (1.0,)}, "weights"),
        ({"weights": (1.0, -1.0)}, "weights"),
        ({"normalization": "l2"}, "normalization"),
        ({"candidates": 0}, "candidates"),
    ],
)
def test_hybrid_rejects_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        HybridRetriever(_Fixed([]), _Fixed([]), **kwargs)  # type: ignore[arg-type]


def test_hybrid_finds_what_either_side_finds() -> None:
    chunks = [
        make_chunk("code", "Error E1234 means the disk is full."),
        make_chunk("prose", "When storage runs out, writes fail with an error."),
        make_chunk("other", "The logo is teal."),
    ]
    embedder, store, index = FakeEmbedder(), MemoryStore(), KeywordIndex()
    store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
    index.upsert(chunks)
    hybrid = HybridRetriever(DenseRetriever(embedder, store), BM25Retriever(index))
    assert hybrid.retrieve("E1234", k=1)[0].chunk.id == "code"
    top = [h.chunk.id for h in hybrid.retrieve("storage runs out writes fail", k=2)]
    assert top[0] == "prose"


_SNAPSHOT: contextvars.ContextVar[str] = contextvars.ContextVar("snapshot", default="none")


class _Overlapping(_Fixed):
    """Records the thread and the context variable it ran in; the keyword side waits
    until the dense side has started, so the two can only finish if they overlap."""

    def __init__(self, hits: list[ScoredChunk], started: threading.Event, wait: bool) -> None:
        super().__init__(hits)
        self.started, self.wait = started, wait
        self.seen: list[tuple[int, str]] = []

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if self.wait:
            assert self.started.wait(5), "the dense search never started beside this one"
        else:
            self.started.set()
        self.seen.append((threading.get_ident(), _SNAPSHOT.get()))
        return super().retrieve(query, k, filters)


def test_parallel_hybrid_overlaps_in_the_callers_context_with_the_same_result() -> None:
    started = threading.Event()
    dense = _Overlapping(DENSE, started, wait=False)
    keyword = _Overlapping(KEYWORD, started, wait=True)
    parallel = HybridRetriever(dense, keyword, parallel=True)
    token = _SNAPSHOT.set("pinned")
    try:
        hits = parallel.retrieve("q", k=3, filters={"lang": "en"})
    finally:
        _SNAPSHOT.reset(token)
    assert hits == HybridRetriever(_Fixed(DENSE), _Fixed(KEYWORD)).retrieve("q", k=3)
    assert keyword.calls == dense.calls == [("q", 50, {"lang": "en"})]
    (dense_thread, dense_seen), (keyword_thread, keyword_seen) = dense.seen[0], keyword.seen[0]
    assert dense_thread == threading.get_ident()
    assert keyword_thread != dense_thread
    assert dense_seen == keyword_seen == "pinned"


class _Failing(_Fixed):
    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        raise RuntimeError(f"{query} failed")


def test_parallel_hybrid_raises_either_sides_error() -> None:
    with pytest.raises(RuntimeError, match="dense failed"):
        HybridRetriever(_Failing([]), _Fixed(KEYWORD), parallel=True).retrieve("dense")
    with pytest.raises(RuntimeError, match="words failed"):
        HybridRetriever(_Fixed(DENSE), _Failing([]), parallel=True).retrieve("words")
