"""bfloat16 autocast against float32 on the real bundled MiniLM."""

from __future__ import annotations

import numpy as np

from ragkit.embeddings import SentenceTransformerEmbedder

TEXTS = [
    f"Section {i}: the connection pool keeps {i + 2} idle connections and retries "
    f"failed requests after {i % 5 + 1} seconds, unless the circuit breaker is open."
    for i in range(24)
] + ["Mitochondria are the powerhouse of the cell.", "Die Katze schläft auf dem Sofa."]


def test_bfloat16_vectors_match_float32(minilm: SentenceTransformerEmbedder) -> None:
    # Same model files, same shared model object: only the precision differs.
    fp32 = SentenceTransformerEmbedder(precision="float32").embed_documents(TEXTS)
    bf16 = SentenceTransformerEmbedder(precision="bfloat16").embed_documents(TEXTS)
    assert bf16.dtype == np.float32
    assert bf16.shape == fp32.shape
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-4)
    cosine = (fp32 * bf16).sum(axis=1)
    assert cosine.min() > 0.999
    assert not np.array_equal(fp32, bf16)  # autocast really ran in bfloat16


def test_a_query_runs_in_float32(minilm: SentenceTransformerEmbedder) -> None:
    fp32 = SentenceTransformerEmbedder(precision="float32").embed_query(TEXTS[0])
    bf16 = SentenceTransformerEmbedder(precision="bfloat16").embed_query(TEXTS[0])
    assert np.array_equal(fp32, bf16)
