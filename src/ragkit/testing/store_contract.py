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

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters, VectorStore
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, document_id

__all__ = ["Reopen", "VectorStoreContract", "make_chunk", "unit_vectors"]

#: Closes the store it is given and opens a new one on the same data.
Reopen = Callable[[VectorStore], VectorStore]

_TOL = 1e-4


def make_chunk(
    chunk_id: str,
    text: str | None = None,
    *,
    source: str = "doc.md",
    page: int | None = None,
    page_end: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Chunk:
    """A chunk with sensible defaults for store tests."""
    text = f"Text of chunk {chunk_id}." if text is None else text
    return Chunk(
        id=chunk_id,
        text=text,
        document_id=document_id(source),
        source=source,
        start=0,
        end=len(text),
        page=page,
        page_end=page_end,
        metadata=metadata or {},
    )


def unit_vectors(n: int, dimension: int, seed: int = 0) -> NDArray[np.float32]:
    """``n`` random unit vectors, reproducible from ``seed``."""
    rows = np.random.default_rng(seed).standard_normal((n, dimension))
    unit: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _rich_chunks() -> list[Chunk]:
    return [
        make_chunk(
            "rich-meta",
            metadata={
                "lang": "en",
                "year": 2021,
                "rating": 4.5,
                "draft": False,
                "tags": ["setup", "timeouts"],
                "heading_path": ("Guide", "Setup"),
                "nested": {"a": [1, {"b": None}], "$odd": True},
                "nothing": None,
                "source": "shadowed by the built-in field",
            },
        ),
        Chunk(
            id="paged",
            text="Page-crossing text.",
            document_id=document_id("report.pdf"),
            source="report.pdf",
            start=120,
            end=139,
            page=3,
            page_end=4,
            page_label="iii",
            page_label_end="iv",
        ),
        make_chunk(
            "unicode-ü",
            "Grüße aus Köln — 東京 ☕ 🌍 naïve café",
            source="dir/naïve 文件.md",
            metadata={"título": "Café", "emoji": "🌍"},
        ),
        make_chunk("plain", "", source="empty.txt"),
    ]


#: (filters, ids expected) over :func:`_filter_corpus`, worked out by hand.
FILTER_CASES: list[tuple[Filters, set[str]]] = [
    ({"lang": "en"}, {"en1", "en2"}),
    ({"lang": {"$eq": "en"}}, {"en1", "en2"}),
    ({"lang": {"$in": ["en", "de"]}}, {"en1", "en2", "de1"}),
    ({"lang": {"$ne": "en"}}, {"de1", "fr1", "bare", "int1", "float1", "bool1", "str1"}),
    ({"lang": {"$nin": ["en", "de"]}}, {"fr1", "bare", "int1", "float1", "bool1", "str1"}),
    ({"lang": "en", "year": 2021}, {"en2"}),
    ({"lang": {"$in": ["en", "fr"]}, "draft": False}, {"en1"}),
    ({"source": "a.md"}, {"en1", "de1"}),
    ({"source": {"$in": ["b.md", "c.md"]}}, {"en2", "fr1"}),
    ({"document_id": document_id("c.md")}, {"fr1"}),
    ({"page": 2}, {"en2"}),
    ({"page": {"$gte": 2}}, {"en2", "de1"}),
    ({"page_end": 3}, {"de1"}),
    ({"year": {"$gt": 2019}}, {"en1", "en2", "de1"}),
    ({"year": {"$lte": 2020}}, {"en1", "fr1"}),
    ({"rating": {"$lt": 4.6}}, {"de1"}),
    ({"rating": {"$gte": 4}}, {"de1"}),
    ({"code": 1}, {"int1", "float1"}),
    ({"code": 1.0}, {"int1", "float1"}),
    ({"code": {"$in": [1, 2.5]}}, {"int1", "float1"}),
    ({"code": True}, {"bool1"}),
    ({"code": "1"}, {"str1"}),
    ({"code": {"$gt": 0}}, {"int1", "float1"}),
    ({"code": {"$ne": 1}}, {"en1", "en2", "de1", "fr1", "bare", "bool1", "str1"}),
    ({"lang": {"$in": []}}, set()),
    (
        {"lang": {"$nin": []}},
        {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"},
    ),
    ({"missing": "x"}, set()),
    ({"missing": {"$gt": 1}}, set()),
    (
        {"missing": {"$ne": "x"}},
        {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"},
    ),
    ({"tags": "x"}, set()),
    ({}, {"en1", "en2", "de1", "fr1", "bare", "int1", "float1", "bool1", "str1"}),
]

INVALID_FILTERS: list[Any] = [
    {"lang": {"$regex": "e.*"}},
    {"lang": {"$in": "en"}},
    {"lang": {"$in": ["en", 1]}},
    {"year": {"$gt": "2020"}},
    {"year": {"$gt": True}},
    {"lang": None},
    {"lang": ["en"]},
    {"lang": {"$eq": "en", "$ne": "de"}},
    {"lang": {}},
    {"$or": [{"lang": "en"}, {"lang": "de"}]},
    {"_ragkit": "x"},
    {"rating": float("nan")},
    "lang=en",
]


def _filter_corpus() -> list[Chunk]:
    return [
        make_chunk(
            "en1", source="a.md", page=1, metadata={"lang": "en", "year": 2020, "draft": False}
        ),
        make_chunk(
            "en2", source="b.md", page=2, metadata={"lang": "en", "year": 2021, "draft": True}
        ),
        make_chunk(
            "de1",
            source="a.md",
            page=3,
            page_end=3,
            metadata={"lang": "de", "year": 2021, "rating": 4.5},
        ),
        make_chunk("fr1", source="c.md", metadata={"lang": "fr", "year": 2019}),
        make_chunk("bare", source="d.md", metadata={"tags": ["x", "y"]}),
        make_chunk("int1", metadata={"code": 1}),
        make_chunk("float1", metadata={"code": 1.0}),
        make_chunk("bool1", metadata={"code": True}),
        make_chunk("str1", metadata={"code": "1"}),
    ]


class VectorStoreContract:
    """Tests that pin down the :class:`ragkit.protocols.VectorStore` behaviour.

    Override the ``store`` fixture (a new, empty store) and, for persistent stores,
    ``reopen`` (see the module docstring). Every test asserts observable behaviour
    through the protocol's methods only.
    """

    dimension: ClassVar[int] = 16
    large_batch: ClassVar[int] = 6000

    @pytest.fixture
    def store(self) -> VectorStore:
        raise NotImplementedError("Override the `store` fixture to return a new, empty store.")

    @pytest.fixture
    def reopen(self) -> Reopen | None:
        """None for stores that do not persist; persistence tests are skipped then."""
        return None

    # -- helpers ------------------------------------------------------------------------

    def vectors(self, n: int, seed: int = 0) -> NDArray[np.float32]:
        return unit_vectors(n, self.dimension, seed)

    def fill(
        self, store: VectorStore, chunks: Sequence[Chunk], seed: int = 0
    ) -> NDArray[np.float32]:
        vectors = self.vectors(len(chunks), seed)
        store.upsert(chunks, vectors)
        return vectors

    # -- basics -------------------------------------------------------------------------

    def test_empty_store(self, store: VectorStore) -> None:
        assert store.count() == 0
        assert store.ids() == []
        assert store.get(["nope"]) == []
        assert store.search(self.vectors(1)[0], k=5) == []

    def test_upsert_then_get_returns_equal_chunks(self, store: VectorStore) -> None:
        chunks = _rich_chunks()
        self.fill(store, chunks)
        assert store.get([c.id for c in chunks]) == chunks
        assert store.get([c.id for c in reversed(chunks)]) == chunks[::-1]
        assert store.get(["unknown", chunks[1].id]) == [chunks[1]]
        assert store.get([]) == []

    def test_search_returns_the_stored_chunks(self, store: VectorStore) -> None:
        chunks = _rich_chunks()
        vectors = self.fill(store, chunks)
        for chunk, vector in zip(chunks, vectors, strict=True):
            best = store.search(vector, k=1)
            assert best[0].chunk == chunk
            assert best[0].score == pytest.approx(1.0, abs=_TOL)

    def test_count_and_ids_follow_writes(self, store: VectorStore) -> None:
        chunks = [make_chunk(f"c{i}") for i in range(7)]
        self.fill(store, chunks)
        assert store.count() == 7
        assert sorted(store.ids()) == sorted(c.id for c in chunks)
        store.delete(["c1", "c3"])
        assert store.count() == 5
        assert sorted(store.ids()) == ["c0", "c2", "c4", "c5", "c6"]

    def test_upsert_replaces_existing_ids(self, store: VectorStore) -> None:
        vectors = self.fill(store, [make_chunk(f"c{i}") for i in range(5)])
        new = make_chunk("c2", "Replaced text.", metadata={"version": 2})
        new_vector = self.vectors(1, seed=99)
        store.upsert([new], new_vector)
        assert store.count() == 5
        assert store.get(["c2"]) == [new]
        hit = store.search(new_vector[0], k=1)[0]
        assert hit.chunk == new
        assert hit.score == pytest.approx(1.0, abs=_TOL)
        old = [h for h in store.search(vectors[2], k=5) if h.chunk.id == "c2"]
        assert old[0].score == pytest.approx(float(vectors[2] @ new_vector[0]), abs=_TOL)

    def test_repeated_id_in_one_batch_last_wins(self, store: VectorStore) -> None:
        first, last = make_chunk("dup", "first"), make_chunk("dup", "last")
        vectors = self.vectors(2)
        store.upsert([first, last], vectors)
        assert store.count() == 1
        assert store.get(["dup"]) == [last]
        assert store.search(vectors[1], k=1)[0].score == pytest.approx(1.0, abs=_TOL)

    def test_delete_ignores_unknown_ids(self, store: VectorStore) -> None:
        self.fill(store, [make_chunk("a"), make_chunk("b")])
        store.delete(["a", "never-stored"])
        store.delete([])
        assert store.ids() == ["b"]
        assert store.get(["a"]) == []
        assert all(h.chunk.id != "a" for h in store.search(self.vectors(1)[0], k=10))

    def test_empty_upsert_is_a_no_op(self, store: VectorStore) -> None:
        store.upsert([], np.zeros((0, self.dimension), dtype=np.float32))
        assert store.count() == 0

    # -- search -------------------------------------------------------------------------

    def test_search_matches_brute_force_cosine(self, store: VectorStore) -> None:
        chunks = [make_chunk(f"c{i:03d}") for i in range(300)]
        vectors = self.fill(store, chunks, seed=1)
        for query in self.vectors(5, seed=2):
            expected = np.argsort(-(vectors @ query), kind="stable")[:10]
            hits = store.search(query, k=10)
            assert [h.chunk.id for h in hits] == [chunks[i].id for i in expected]
            for hit, i in zip(hits, expected, strict=True):
                assert hit.score == pytest.approx(float(vectors[i] @ query), abs=_TOL)

    def test_scores_are_cosine_similarities(self, store: VectorStore) -> None:
        e0, e1 = np.eye(self.dimension, dtype=np.float32)[:2]
        rows = np.stack([e0, -e0, e1, (e0 + e1) / np.sqrt(2)]).astype(np.float32)
        store.upsert([make_chunk(i) for i in ("same", "opposite", "orthogonal", "diagonal")], rows)
        hits = store.search(e0, k=4)
        assert [h.chunk.id for h in hits] == ["same", "diagonal", "orthogonal", "opposite"]
        expected = [1.0, np.sqrt(0.5), 0.0, -1.0]
        assert [h.score for h in hits] == pytest.approx(expected, abs=_TOL)

    def test_k_edge_cases(self, store: VectorStore) -> None:
        vectors = self.fill(store, [make_chunk(f"c{i}") for i in range(20)])
        assert store.search(vectors[0], k=0) == []
        assert store.search(vectors[0], k=-3) == []
        everything = store.search(vectors[0], k=1000)
        assert sorted(h.chunk.id for h in everything) == sorted(f"c{i}" for i in range(20))
        scores = [h.score for h in everything]
        assert scores == sorted(scores, reverse=True)
        assert len(store.search(vectors[0], k=1000, filters={"source": "doc.md"})) == 20

    def test_equal_scores_are_ordered_by_id(self, store: VectorStore) -> None:
        same = self.vectors(1, seed=5)
        names = ["f", "b", "d", "a", "e", "c"]
        store.upsert([make_chunk(n) for n in names], np.repeat(same, len(names), axis=0))
        self.fill(store, [make_chunk(f"other{i}") for i in range(30)], seed=6)
        assert [h.chunk.id for h in store.search(same[0], k=3)] == ["a", "b", "c"]
        assert [h.chunk.id for h in store.search(same[0], k=6)] == sorted(names)

    # -- filters ------------------------------------------------------------------------

    @pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
    def test_filters(self, store: VectorStore, filters: Filters, expected: set[str]) -> None:
        vectors = self.fill(store, _filter_corpus())
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
        vectors = self.fill(store, _filter_corpus())
        with pytest.raises(ConfigurationError):
            store.search(vectors[0], k=3, filters=filters)
        with pytest.raises(ConfigurationError):
            store.ids(filters)

    # -- validation ---------------------------------------------------------------------

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
        chunks = _rich_chunks() + [make_chunk(f"c{i}", metadata={"n": i}) for i in range(20)]
        vectors = self.fill(store, chunks)
        store.delete(["c0"])
        before = store.search(vectors[5], k=5, filters={"n": {"$gte": 3}})
        again = reopen(store)
        try:
            assert again.count() == len(chunks) - 1
            assert again.get([c.id for c in chunks]) == [c for c in chunks if c.id != "c0"]
            after = again.search(vectors[5], k=5, filters={"n": {"$gte": 3}})
            assert [h.chunk for h in after] == [h.chunk for h in before]
            assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=_TOL)
            again.upsert([make_chunk("late")], self.vectors(1, seed=11))
            third = reopen(again)
        except BaseException:
            _close(again)
            raise
        try:
            assert third.count() == len(chunks)
            assert "late" in third.ids()
            with pytest.raises(ConfigurationError):
                third.upsert([make_chunk("wrong")], unit_vectors(1, self.dimension + 1))
        finally:
            _close(third)
