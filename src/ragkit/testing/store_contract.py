"""The contract every vector store must pass, as a pytest class to subclass.

Subclass :class:`VectorStoreContract` in a test module named ``test_*.py``, with a
class name that starts with ``Test``, and provide a ``store`` fixture that yields a
new, empty store. Persistent stores also provide ``reopen``::

    import pytest
    from ragkit.testing.store_contract import VectorStoreContract

    class TestMyStore(VectorStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore(path=tmp_path / "kb")
            yield store
            store.close()

        @pytest.fixture
        def reopen(self, tmp_path):
            def reopen(old):
                old.close()
                return MyStore(path=tmp_path / "kb")

            return reopen

The tests use vectors of :attr:`VectorStoreContract.dimension` (16) and one batch of
:attr:`VectorStoreContract.large_batch` chunks (6,000, above Chroma's 5,461 limit);
override either as a class attribute. This module needs pytest.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragkit.errors import ConfigurationError
from ragkit.protocols import VectorStore
from ragkit.testing._store_base import BasicsTests, SearchTests
from ragkit.testing._store_data import FILTER_CASES as FILTER_CASES  # noqa: PLC0414 (re-export)
from ragkit.testing._store_data import INVALID_FILTERS as INVALID_FILTERS  # noqa: PLC0414 (re-export)
from ragkit.testing._store_data import TOL, close_store, make_chunk, rich_chunks, unit_vectors
from ragkit.testing._store_filters import FilterTests, ValidationTests
from ragkit.testing.fakes import FakeEmbedder

__all__ = ["Reopen", "VectorStoreContract", "make_chunk", "unit_vectors"]

#: Closes the store it is given and opens a new one on the same data.
Reopen = Callable[[VectorStore], VectorStore]


class VectorStoreContract(BasicsTests, SearchTests, FilterTests, ValidationTests):
    """Tests that pin down the :class:`ragkit.protocols.VectorStore` behaviour.

    Override the ``store`` fixture (a new, empty store) and, for persistent stores,
    ``reopen`` (see the module docstring). Every test asserts observable behaviour
    through the protocol's methods only.
    """

    @pytest.fixture
    def store(self) -> VectorStore:
        raise NotImplementedError("Override the `store` fixture to return a new, empty store.")

    @pytest.fixture
    def reopen(self) -> Reopen | None:
        """None for stores that do not persist; persistence tests are skipped then."""
        return None

    # -- content ------------------------------------------------------------------------

    def test_unicode_text_and_filters(self, store: VectorStore) -> None:
        embedder = FakeEmbedder(dimension=self.dimension)
        texts = ["Die Straße ist lang", "東京の天気は晴れ", "Café crème naïve", "Ελληνικά κείμενα"]
        chunks = [
            make_chunk(f"u{i}", text, metadata={"título": text.split()[0]})
            for i, text in enumerate(texts)
        ]
        store.upsert(chunks, embedder.embed_documents(texts))
        assert store.get([c.id for c in chunks]) == chunks
        for chunk in chunks:
            hit = store.search(embedder.embed_query(chunk.text), k=1)[0]
            assert hit.chunk == chunk
        assert store.ids({"título": "Café"}) == ["u2"]
        assert store.ids({"título": {"$in": ["東京の天気は晴れ", "Ελληνικά"]}}) == ["u1", "u3"]

    def test_large_batch(self, store: VectorStore) -> None:
        n = self.large_batch
        chunks = [make_chunk(f"c{i:05d}", metadata={"even": i % 2 == 0}) for i in range(n)]
        vectors = self.fill(store, chunks, seed=3)
        assert store.count() == n
        assert len(store.ids()) == n
        assert len(store.ids({"even": True})) == n // 2
        sample = [chunks[0].id, chunks[n // 2].id, chunks[-1].id]
        assert store.get(sample) == [chunks[0], chunks[n // 2], chunks[-1]]
        assert store.search(vectors[-1], k=1)[0].chunk == chunks[-1]
        store.delete([c.id for c in chunks])
        assert store.count() == 0

    # -- persistence --------------------------------------------------------------------

    def test_persistence(self, store: VectorStore, reopen: Reopen | None) -> None:
        if reopen is None:
            pytest.skip("this store does not persist")
        chunks = rich_chunks() + [make_chunk(f"c{i}", metadata={"n": i}) for i in range(20)]
        vectors = self.fill(store, chunks)
        store.delete(["c0"])
        before = store.search(vectors[5], k=5, filters={"n": {"$gte": 3}})
        again = reopen(store)
        try:
            assert again.count() == len(chunks) - 1
            assert again.get([c.id for c in chunks]) == [c for c in chunks if c.id != "c0"]
            after = again.search(vectors[5], k=5, filters={"n": {"$gte": 3}})
            assert [h.chunk for h in after] == [h.chunk for h in before]
            assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=TOL)
            again.upsert([make_chunk("late")], self.vectors(1, seed=11))
            third = reopen(again)
        except BaseException:
            close_store(again)
            raise
        try:
            assert third.count() == len(chunks)
            assert "late" in third.ids()
            with pytest.raises(ConfigurationError):
                third.upsert([make_chunk("wrong")], unit_vectors(1, self.dimension + 1))
        finally:
            close_store(third)
