"""The FAISS side of :class:`~ragkit.stores.FaissStore`: which index, and tombstones.

Two kinds of index, both wrapped in ``IndexIDMap2`` so that labels are the store's
integer row ids:

* ``"flat"``: ``IndexFlatIP``, exact; deletes remove the vectors at once.
* ``"hnsw"``: ``IndexHNSWSQ`` with float16 storage (half the memory of float32; the
  store rescores the hits with the float32 vectors it keeps in SQLite, so scores stay
  exact). HNSW cannot remove a vector, so a deleted or replaced row becomes a
  *tombstone*: its label is excluded from every search with an ``IDSelector``, and the
  index is rebuilt once tombstones pass :attr:`IndexOptions.max_dead_fraction`.

The store never reuses a row id (a replaced chunk gets a new one), so a label is either
live or dead, never both.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.stores._faiss_db import DB_FILE, vector_batches

__all__ = [
    "IndexKind",
    "IndexOptions",
    "VectorIndex",
    "auto_ef_search",
    "build_index",
    "read_index",
]

logger = logging.getLogger(__name__)

#: ``"auto"`` picks ``"flat"`` (exact) or ``"hnsw"`` (approximate) by size.
IndexKind = Literal["auto", "flat", "hnsw"]
_KINDS = ("auto", "flat", "hnsw")
_MAX_EF = 4096
_BUILD_BATCH = 20_000


def auto_ef_search(live: int) -> int:
    """The default HNSW ``efSearch`` for ``live`` vectors: 128 up to 128,000, then more.

    The next power of two above ``live / 1000``: 128 at 100k (recall@10 0.987 in
    ``docs/benchmarks/scale.md``), 1,024 at 1M (0.980; 128 gave 0.870 there).
    """
    return max(128, 1 << max(0, math.ceil(math.log2(max(live, 1) / 1000))))


@dataclass(frozen=True, slots=True)
class IndexOptions:
    """How :class:`~ragkit.stores.FaissStore` indexes its vectors.

    Args:
        kind: ``"auto"``, ``"flat"`` or ``"hnsw"``.
        approximate_above: with ``"auto"``, chunks above which HNSW replaces exact search.
        m: HNSW links per vector (memory ~ ``8 * m`` bytes per vector; more = better recall).
        ef_construction: HNSW candidate list while building (more = better graph, slower).
        ef_search: HNSW candidate list while searching (more = better recall, slower);
            None picks :func:`auto_ef_search` of the store's size.
        max_dead_fraction: HNSW tombstone share that triggers a rebuild.
    """

    kind: IndexKind = "auto"
    approximate_above: int = 50_000
    m: int = 32
    ef_construction: int = 40
    ef_search: int | None = None
    max_dead_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigurationError(
                f"unknown FAISS index {self.kind!r}; use 'auto', 'flat' or 'hnsw'."
            )
        for name in ("approximate_above", "m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if name == "ef_search" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}.")
        if not 0 < self.max_dead_fraction < 1:
            raise ConfigurationError(
                f"max_dead_fraction must be between 0 and 1, got {self.max_dead_fraction!r}."
            )

    def kind_for(self, live: int) -> Literal["flat", "hnsw"]:
        """The index to build for ``live`` vectors."""
        if self.kind != "auto":
            return self.kind
        return "hnsw" if live > self.approximate_above else "flat"


class VectorIndex:
    """A FAISS index of unit vectors labelled by row id, with HNSW tombstones.

    Args:
        faiss: the imported ``faiss`` module.
        index: an ``IndexIDMap2`` over ``IndexFlatIP`` or ``IndexHNSW*``.
        dead: labels in ``index`` that no longer belong to a row.
    """

    def __init__(self, faiss: Any, index: Any, dead: Iterable[int] = ()) -> None:
        self._faiss = faiss
        self._index = index
        inner = faiss.downcast_index(index.index)
        self._hnsw = inner.hnsw if isinstance(inner, faiss.IndexHNSW) else None
        self._dead: set[int] = set(dead)
        self._not_dead: Any = None  # cached selector; holds its inner selector alive

    @classmethod
    def empty(
        cls, faiss: Any, dimension: int, kind: Literal["flat", "hnsw"], options: IndexOptions
    ) -> VectorIndex:
        """A new, empty index of ``kind``."""
        if kind == "flat":
            inner = faiss.IndexFlatIP(dimension)
        else:
            inner = faiss.IndexHNSWSQ(
                dimension, faiss.ScalarQuantizer.QT_fp16, options.m, faiss.METRIC_INNER_PRODUCT
            )
            inner.hnsw.efConstruction = options.ef_construction
        return cls(faiss, faiss.IndexIDMap2(inner))

    @classmethod
    def load(cls, faiss: Any, index: Any, live: NDArray[np.int64]) -> VectorIndex | None:
        """``index`` as read from disk, or None when it lacks some of the ``live`` ids."""
        labels = faiss.vector_to_array(index.id_map).astype(np.int64)
        if np.setdiff1d(live, labels, assume_unique=True).size:
            return None
        vectors = cls(faiss, index, np.setdiff1d(labels, live, assume_unique=True).tolist())
        if vectors._hnsw is None and vectors._dead:
            return None  # a flat index never keeps dead vectors
        return vectors

    @property
    def kind(self) -> Literal["flat", "hnsw"]:
        return "flat" if self._hnsw is None else "hnsw"

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def live(self) -> int:
        """Vectors that belong to a row (stored minus tombstones)."""
        return int(self._index.ntotal) - len(self._dead)

    @property
    def dead_fraction(self) -> float:
        total = int(self._index.ntotal)
        return len(self._dead) / total if total else 0.0

    def rebuild_reason(self, options: IndexOptions) -> str | None:
        """Why the index should be rebuilt under ``options``, or None."""
        wanted = options.kind_for(self.live)
        # Back to exact only below half the threshold, so a store near it doesn't flap.
        if self.kind != wanted and (
            options.kind != "auto" or wanted == "hnsw" or self.live * 2 < options.approximate_above
        ):
            return f"{self.live} chunks call for a {wanted} index"
        if self.dead_fraction > options.max_dead_fraction:
            return f"{self.dead_fraction:.0%} of the HNSW index are deleted or replaced vectors"
        return None

    def add(self, vectors: NDArray[np.float32], labels: NDArray[np.int64]) -> None:
        """Add unit ``vectors`` under new ``labels`` (never used before)."""
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)

    def remove(self, labels: NDArray[np.int64]) -> None:
        """Drop ``labels`` from every later search."""
        if labels.size == 0:
            return
        if self._hnsw is None:
            self._index.remove_ids(labels)
        else:
            self._dead.update(labels.tolist())
            self._not_dead = None

    def search(
        self,
        query: NDArray[np.float32],
        n: int,
        allowed: NDArray[np.int64] | None,
        ef_search: int,
    ) -> list[int]:
        """Labels of about the ``n`` nearest live vectors (exact for flat), best first.

        Args:
            query: one unit vector, shape ``(1, d)``.
            n: how many to return.
            allowed: search only these labels (all live) when given.
            ef_search: HNSW candidate list; raised to ``n``, and for a filter that keeps
                a small share of the vectors, in proportion to it.
        """
        faiss = self._faiss
        selector: Any = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
        elif self._dead:
            if self._not_dead is None:
                dead = faiss.IDSelectorBatch(np.fromiter(self._dead, np.int64, len(self._dead)))
                self._not_dead = (faiss.IDSelectorNot(dead), dead)
            selector = self._not_dead[0]
        if self._hnsw is None:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        else:
            ef = max(ef_search, n)
            if allowed is not None and allowed.size:
                share = allowed.size / max(self.live, 1)
                ef = max(ef, math.ceil(ef_search / share))
            params = faiss.SearchParametersHNSW(efSearch=min(ef, _MAX_EF))
            if selector is not None:
                params.sel = selector
        _, labels = self._index.search(query, n, params=params)
        return [int(i) for i in labels[0] if i >= 0]

    def serialize(self) -> bytes:
        """The index as FAISS's own binary format (no pickle)."""
        data: bytes = self._faiss.serialize_index(self._index).tobytes()
        return data


def build_index(
    faiss: Any, db: sqlite3.Connection, dimension: int, options: IndexOptions
) -> VectorIndex:
    """A new index of every vector in ``db``, of the kind ``options`` pick for its size."""
    live = int(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
    kind = options.kind_for(live)
    index = VectorIndex.empty(faiss, dimension, kind, options)
    for labels, vectors in vector_batches(db, _BUILD_BATCH):
        index.add(vectors, labels)
    if live:
        logger.info("Built a %s FAISS index of %d vectors from %s", kind, live, DB_FILE)
    return index


def read_index(faiss: Any, path: Path, live: NDArray[np.int64]) -> VectorIndex | None:
    """The index saved at ``path`` if it holds every ``live`` row, else None (logged)."""
    try:
        index = VectorIndex.load(faiss, _read(faiss, path), live)
    except (OSError, RuntimeError) as exc:
        logger.warning("Rebuilding the FAISS index: could not read %s (%s)", path, exc)
        return None
    if index is None:
        logger.warning("Rebuilding the FAISS index: %s does not match %s", path, DB_FILE)
    return index


def _read(faiss: Any, path: Path) -> Any:
    """The index in ``path``, read by FAISS straight from the file.

    Reading the file into a buffer first and deserializing that held the index twice
    at its peak (3.1 GB for a 1M-chunk store whose index and vectors take 1.1 GB); a
    name FAISS cannot take as a C string (undecodable bytes) still goes through one.
    """
    try:
        name = os.fsdecode(path)
        name.encode("utf-8")
    except UnicodeError:
        return faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
    if not path.is_file():
        raise OSError(f"{path} does not exist")
    return faiss.read_index(name)
