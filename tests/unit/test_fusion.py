from __future__ import annotations

import pytest

from ragkit.errors import ConfigurationError
from ragkit.retrieval.fusion import reciprocal_rank_fusion
from ragkit.types import Chunk, ScoredChunk


def _hits(*ids: str) -> list[ScoredChunk]:
    return [
        ScoredChunk(Chunk(id=i, text=i, document_id="d", source="s", start=0, end=1), 0.0)
        for i in ids
    ]


def test_rrf_scores_by_hand() -> None:
    fused = reciprocal_rank_fusion([_hits("a", "b", "c"), _hits("c", "a")], k=60)
    scores = {h.chunk.id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert [h.chunk.id for h in fused] == ["a", "c", "b"]


def test_weights_and_limit() -> None:
    fused = reciprocal_rank_fusion([_hits("a"), _hits("b")], weights=[1.0, 2.0], limit=1)
    assert [h.chunk.id for h in fused] == ["b"]
    with pytest.raises(ConfigurationError):
        reciprocal_rank_fusion([_hits("a")], weights=[1.0, 2.0])


def test_ties_broken_by_id() -> None:
    fused = reciprocal_rank_fusion([_hits("b"), _hits("a")])
    assert [h.chunk.id for h in fused] == ["a", "b"]
