"""Combine several rankings of chunks into one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from ragkit.errors import ConfigurationError
from ragkit.types import ScoredChunk

__all__ = ["Normalization", "normalized_score_fusion", "reciprocal_rank_fusion"]

#: How :func:`normalized_score_fusion` puts each ranking's scores on one scale.
Normalization = Literal["minmax", "zscore"]


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


def _normalize(scores: list[float], method: Normalization) -> tuple[list[float], float]:
    """Scores on a common scale, and the score of a chunk the ranking did not return."""
    if method == "minmax":
        low, high = min(scores), max(scores)
        if high == low:  # nothing to tell the hits apart, but each beats a non-hit
            return [1.0] * len(scores), 0.0
        return [(s - low) / (high - low) for s in scores], 0.0
    mean = math.fsum(scores) / len(scores)
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    if std == 0:
        return [0.0] * len(scores), 0.0
    z = [(s - mean) / std for s in scores]
    return z, min(z)


def normalized_score_fusion(
    rankings: Sequence[Sequence[ScoredChunk]],
    *,
    weights: Sequence[float] | None = None,
    method: Normalization = "minmax",
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Weighted sum of per-ranking normalized scores (convex combination fusion).

    Each ranking's scores are rescaled on their own: ``"minmax"`` maps the best hit to
    1 and the worst to 0; ``"zscore"`` subtracts the mean and divides by the standard
    deviation. A chunk missing from a ranking counts as that ranking's worst score
    (0 for min-max, the lowest z-score), since it ranked below every returned hit.
    Chunks are matched by id; ties are broken by id.

    Example:
        >>> fused = normalized_score_fusion(  # doctest: +SKIP
        ...     [dense_hits, keyword_hits], weights=[0.7, 0.3], limit=10
        ... )

    Args:
        rankings: each a list of hits, best first, with scores on any scale.
        weights: one per ranking (default all 1).
        method: ``"minmax"`` or ``"zscore"``.
        limit: keep at most this many.
    """
    if method not in ("minmax", "zscore"):
        raise ConfigurationError(f"unknown normalization {method!r}; use 'minmax' or 'zscore'")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ConfigurationError(f"{len(weights)} weights for {len(rankings)} rankings")
    chunks: dict[str, ScoredChunk] = {}
    for ranking in rankings:
        for hit in ranking:
            chunks.setdefault(hit.chunk.id, hit)
    scores = dict.fromkeys(chunks, 0.0)
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        normalized, missing = _normalize([h.score for h in ranking], method)
        given = {h.chunk.id: s for h, s in zip(ranking, normalized, strict=True)}
        for cid in scores:
            scores[cid] += weight * given.get(cid, missing)
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    if limit is not None:
        order = order[:limit]
    return [ScoredChunk(chunks[cid].chunk, scores[cid]) for cid in order]
