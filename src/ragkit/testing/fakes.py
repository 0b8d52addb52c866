"""Deterministic stand-ins for models, for fast tests (fakes, not mocks)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.types import Generation, ScoredChunk, Usage

__all__ = ["FakeEmbedder", "FakeGenerator"]

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEmbedder:
    """Bag-of-words embedder: each word maps to a fixed random vector (seeded by its hash).

    Texts that share words get similar vectors, so retrieval tests behave like the real
    thing, without a model.

    Example:
        >>> e = FakeEmbedder(dimension=16)
        >>> e.embed_documents(["a cat", "a dog"]).shape
        (2, 16)
    """

    def __init__(self, dimension: int = 64) -> None:
        self._dimension = dimension
        self._cache: dict[str, NDArray[np.float32]] = {}
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return f"fake-hash-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _word_vector(self, word: str) -> NDArray[np.float32]:
        vec = self._cache.get(word)
        if vec is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vec = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
            self._cache[word] = vec
        return vec

    def _embed(self, text: str) -> NDArray[np.float32]:
        words = _WORD.findall(text.lower())
        if not words:
            words = ["<empty>"]
        vec: NDArray[np.float32] = np.sum(
            [self._word_vector(w) for w in words], axis=0, dtype=np.float32
        )
        norm = float(np.linalg.norm(vec))
        return (vec / np.float32(norm)) if norm else vec

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        self.texts_embedded += len(texts)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._embed(t) for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self._embed(text)


class FakeGenerator:
    """Answers with a fixed template that cites the given markers; its "tokens" are
    words: the question's and the contexts' read, the answer's written (``usage``).

    Args:
        cite: the markers to write; by default ``[1]``. Markers beyond the contexts are
            written too, which lets tests check that the chain removes them.
        text: the sentence to write before the markers.

    Example:
        >>> FakeGenerator(cite=(1, 2)).generate("q", []).text
        "I don't have enough information."
    """

    def __init__(self, cite: Sequence[int] = (1,), text: str = "Answer from the context") -> None:
        self.cite = tuple(cite)
        self.text = text
        self.questions: list[str] = []

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        self.questions.append(question)
        if not contexts:
            return Generation(
                text="I don't have enough information.", contexts=(), model="fake", refused=True
            )
        markers = "".join(f"[{n}]" for n in self.cite)
        text = f"{self.text} {markers}."
        read = [question, *(hit.chunk.text for hit in contexts)]
        usage = Usage(sum(len(t.split()) for t in read), len(text.split()))
        return Generation(text=text, contexts=tuple(contexts), model="fake", usage=usage)
