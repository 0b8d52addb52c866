"""What BM25 scores for each chunk: its own text, or its whole document when that is short.

:class:`~ragkit.retrieval.KeywordIndex` builds its BM25 matrix over *units*. A unit is
one chunk or one whole document (the terms of all its chunks); every chunk is scored
as its unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_DOCUMENT_CHUNKS",
    "SCOPES",
    "Scope",
    "rank_shared",
    "unit_rows",
    "whole",
    "with_context",
]

#: ``"auto"``: a document of at most ``max_document_chunks`` chunks is scored whole, a
#: longer one chunk by chunk; ``"chunk"``: every chunk on its own text; ``"document"``:
#: every chunk as its whole document, however long.
Scope = Literal["auto", "chunk", "document"]
SCOPES: tuple[Scope, ...] = ("auto", "chunk", "document")
#: The ``"auto"`` threshold, chosen on SciFact train (``bench/scifact_scope.py``):
#: 7 chunks of the default chunker is about 1,000 tokens, two pages or so.
MAX_DOCUMENT_CHUNKS = 7


def whole(scope: Scope, size: int, max_document_chunks: int) -> bool:
    """Whether ``scope`` scores a document of ``size`` chunks as one unit."""
    return scope == "document" or (scope == "auto" and size <= max_document_chunks)


def unit_rows(
    scope: Scope, max_document_chunks: int, documents: Sequence[str]
) -> NDArray[np.intp] | None:
    """The unit (``0..n-1``) of each chunk, given the chunks' document ids.

    ``None`` when every unit is one chunk (then chunk ``p`` is unit ``p``). A
    document's unit holds the terms of all its chunks, each with its own title and
    heading context: the overlap between neighbouring chunks and the context count once
    per chunk, which weighs titles and headings up a little, as BM25F would.
    """
    if scope == "chunk":
        return None
    members: dict[str, list[int]] = {}
    for position, document_id in enumerate(documents):
        members.setdefault(document_id, []).append(position)
    rows = np.empty(len(documents), np.intp)
    n = 0
    for positions in members.values():
        if whole(scope, len(positions), max_document_chunks):
            rows[positions] = n
            n += 1
        else:
            rows[positions] = np.arange(n, n + len(positions))
            n += len(positions)
    return rows if n < len(documents) else None


def with_context(text: str, metadata: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``text`` after the string values of ``metadata[key]`` it does not already hold."""
    parts = [metadata.get(key) for key in keys]
    extra = [p for p in parts if isinstance(p, str) and p and p not in text]
    return "\n".join([*extra, text])


def rank_shared(
    scores: NDArray[np.float32],
    own: NDArray[np.int64],
    order: Sequence[str],
    positions: NDArray[np.intp],
    k: int,
) -> list[int]:
    """Indexes of the ``k`` best ``scores``; ties by ``own`` (higher first), then chunk id.

    The chunks of a document scored as a whole tie; ``own`` (how many of the query's
    terms each chunk holds itself) puts the passage with the query's words first. The
    id of hit ``i`` is ``order[positions[i]]``, looked up only for hits at the cut.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return []
    if k < n:
        cut = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= cut).tolist()
    else:
        candidates = list(range(n))
    candidates.sort(key=lambda i: (-float(scores[i]), -float(own[i]), order[int(positions[i])]))
    return candidates[:k]
