"""Store contract test groups: filters, and validation of what is written.

See :mod:`ragkit.testing.store_contract` for how to use the contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters, VectorStore
from ragkit.testing._store_base import StoreContractBase
from ragkit.testing._store_data import (
    FILTER_CASES,
    INVALID_FILTERS,
    filter_corpus,
    make_chunk,
    unit_vectors,
)

__all__ = ["FilterTests", "ValidationTests"]


class FilterTests(StoreContractBase):
    """Filters: each operator on each field kind, applied before the top ``k``."""

    @pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
    def test_filters(self, store: VectorStore, filters: Filters, expected: set[str]) -> None:
        vectors = self.fill(store, filter_corpus())
        assert set(store.ids(filters)) == expected
        hits = store.search(vectors[0], k=100, filters=filters)
        assert {h.chunk.id for h in hits} == expected
        assert len(hits) == len(expected)

    def test_filter_applies_before_top_k(self, store: VectorStore) -> None:
        query = self.vectors(1, seed=7)[0]
        noise = self.vectors(100, seed=8)
        near = query + 0.3 * noise[:97]
        far = -query + 0.3 * noise[97:]
        rows = np.concatenate([near, far]).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        chunks = [make_chunk(f"n{i:02d}") for i in range(97)]
        chunks += [make_chunk(f"rare{i}", metadata={"rare": True}) for i in range(3)]
        store.upsert(chunks, rows)
        assert not any(h.chunk.id.startswith("rare") for h in store.search(query, k=10))
        hits = store.search(query, k=10, filters={"rare": True})
        expected = np.argsort(-(rows[97:] @ query), kind="stable")
        assert [h.chunk.id for h in hits] == [f"rare{i}" for i in expected]

    def test_filter_on_source_with_search(self, store: VectorStore) -> None:
        chunks = [make_chunk(f"c{i:02d}", source=f"file{i % 4}.md") for i in range(40)]
        vectors = self.fill(store, chunks)
        hits = store.search(vectors[0], k=5, filters={"source": "file3.md"})
        expected = [i for i in np.argsort(-(vectors @ vectors[0]), kind="stable") if i % 4 == 3][:5]
        assert [h.chunk.id for h in hits] == [chunks[i].id for i in expected]

    @pytest.mark.parametrize("filters", INVALID_FILTERS)
    def test_invalid_filters_raise_configuration_error(
        self, store: VectorStore, filters: Any
    ) -> None:
        vectors = self.fill(store, filter_corpus())
        with pytest.raises(ConfigurationError):
            store.search(vectors[0], k=3, filters=filters)
        with pytest.raises(ConfigurationError):
            store.ids(filters)


class ValidationTests(StoreContractBase):
    """Bad input is refused whole: a wrong dimension or a bad batch writes nothing."""

    def test_dimension_mismatch_raises(self, store: VectorStore) -> None:
        self.fill(store, [make_chunk("a")])
        wrong = self.dimension + 1
        with pytest.raises(ConfigurationError) as info:
            store.upsert([make_chunk("b")], unit_vectors(1, wrong))
        assert str(self.dimension) in str(info.value)
        assert str(wrong) in str(info.value)
        with pytest.raises(ConfigurationError):
            store.search(unit_vectors(1, wrong)[0], k=1)
        assert store.ids() == ["a"]

    @pytest.mark.parametrize("problem", ["length", "shape", "nan", "inf", "zero"])
    def test_bad_batches_write_nothing(self, store: VectorStore, problem: str) -> None:
        chunks = [make_chunk("a"), make_chunk("b")]
        vectors = self.vectors(2)
        if problem == "length":
            vectors = vectors[:1]
        elif problem == "shape":
            vectors = vectors[0]
        else:
            vectors[1, 3] = {"nan": np.nan, "inf": np.inf, "zero": 0.0}[problem]
            if problem == "zero":
                vectors[1] = 0.0
        with pytest.raises(ConfigurationError):
            store.upsert(chunks, vectors)
        assert store.count() == 0
