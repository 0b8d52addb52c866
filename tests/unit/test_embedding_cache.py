from __future__ import annotations

from pathlib import Path

import numpy as np

from ragkit.embeddings import CachedEmbedder
from ragkit.testing import FakeEmbedder


def test_same_text_is_embedded_once_in_memory() -> None:
    inner = FakeEmbedder()
    cached = CachedEmbedder(inner)
    first = cached.embed_documents(["a b", "c d", "a b"])
    second = cached.embed_documents(["c d", "e f"])
    assert inner.texts_embedded == 3  # "a b", "c d", "e f"
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(first[1], second[0])
    np.testing.assert_allclose(second[1], inner.embed_documents(["e f"])[0])
    assert (cached.hits, cached.misses) == (2, 3)


def test_persistent_cache_survives_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first = CachedEmbedder(FakeEmbedder(), path)
    vectors = first.embed_documents(["one", "two"])
    first.close()
    inner = FakeEmbedder()
    again = CachedEmbedder(inner, path)
    np.testing.assert_array_equal(again.embed_documents(["two", "one"]), vectors[::-1])
    assert inner.texts_embedded == 0


def test_cache_is_keyed_by_model(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    CachedEmbedder(FakeEmbedder(dimension=8), path).embed_documents(["x"])
    other = FakeEmbedder(dimension=16)
    out = CachedEmbedder(other, path).embed_documents(["x"])
    assert other.texts_embedded == 1
    assert out.shape == (1, 16)


def test_empty_input_gives_empty_matrix() -> None:
    assert CachedEmbedder(FakeEmbedder(dimension=8)).embed_documents([]).shape == (0, 8)
