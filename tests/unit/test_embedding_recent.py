"""RecentVectors: each text embedded once while it is remembered, and memory bounded."""

from __future__ import annotations

import numpy as np

from ragkit.embeddings.recent import RecentVectors
from ragkit.testing import FakeEmbedder


def test_remembered_texts_are_not_embedded_again() -> None:
    inner = FakeEmbedder()
    recent = RecentVectors(inner, size=8)
    first = recent.embed_documents(["pool size", "timeout", "pool size"])
    assert inner.texts_embedded == 2
    again = recent.embed_documents(["timeout", "retries"])
    assert inner.texts_embedded == 3  # only "retries" is new
    reference = FakeEmbedder()
    np.testing.assert_allclose(
        first, reference.embed_documents(["pool size", "timeout", "pool size"])
    )
    np.testing.assert_allclose(again, reference.embed_documents(["timeout", "retries"]))


def test_the_least_recently_used_text_is_forgotten_first() -> None:
    inner = FakeEmbedder()
    recent = RecentVectors(inner, size=2)
    recent.embed_documents(["a", "b"])
    recent.embed_documents(["a"])  # "a" is now more recent than "b"
    recent.embed_documents(["c"])  # forgets "b"
    assert inner.texts_embedded == 3
    recent.embed_documents(["a", "c"])
    assert inner.texts_embedded == 3
    recent.embed_documents(["b"])
    assert inner.texts_embedded == 4


def test_queries_and_metadata_come_from_the_inner_embedder() -> None:
    inner = FakeEmbedder(dimension=16)
    recent = RecentVectors(inner)
    assert (recent.model_id, recent.dimension) == (inner.model_id, 16)
    np.testing.assert_allclose(recent.embed_query("timeout"), inner.embed_query("timeout"))
    assert recent.embed_documents([]).shape == (0, 16)
