"""Combine several rankings of chunks into one."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.errors import ConfigurationError
from ragkit.types import ScoredChunk

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[ScoredChunk]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Reciprocal rank fusion (Cormack et al., 2009): score = sum of w / (k + rank).

    Chunks are matched by id; the fused score replaces the original ones. Ties are
    broken by chunk id so the result is deterministic.

    Example:
        >>> fused = reciprocal_rank_fusion([dense_hits, keyword_hits], limit=10)  # doctest: +SKIP

    Args:
        rankings: each a list of hits, best first.
        k: the rank constant; 60 is the value from the paper.
        weights: one per ranking (default all 1).
        limit: keep at most this many.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ConfigurationError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    chunks: dict[str, ScoredChunk] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, 1):
            cid = hit.chunk.id
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
            chunks.setdefault(cid, hit)
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    if limit is not None:
        order = order[:limit]
    return [ScoredChunk(chunks[cid].chunk, scores[cid]) for cid in order]
