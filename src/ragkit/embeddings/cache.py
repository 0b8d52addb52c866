"""A cache in front of any embedder: the same text is never embedded twice."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragkit.embeddings._wrapper import WrappedEmbedder
from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder

__all__ = ["CachedEmbedder"]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CachedEmbedder(WrappedEmbedder):
    """Wraps an embedder with a cache keyed by (model id, text hash).

    With a ``path`` the cache is a SQLite file and survives restarts (and crashes: a
    vector is committed as soon as it is computed); without one it lives in memory.
    Queries are not cached: they are rarely repeated and cheap.

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> cached = CachedEmbedder(FakeEmbedder())
        >>> _ = cached.embed_documents(["a", "a", "b"])
        >>> cached.inner.texts_embedded
        2

    Args:
        inner: the embedder that computes missing vectors.
        path: SQLite file for a persistent cache; ``None`` for memory only.
    """

    def __init__(self, inner: Embedder, path: str | Path | None = None) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._memory: dict[str, NDArray[np.float32]] = {}
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " model_id TEXT NOT NULL, text_sha256 TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (model_id, text_sha256))"
            )
            self._db.commit()

    def _lookup(self, keys: list[str]) -> dict[str, NDArray[np.float32]]:
        if self._db is None:
            return {k: self._memory[k] for k in keys if k in self._memory}
        found: dict[str, NDArray[np.float32]] = {}
        model_id = self.inner.model_id
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT text_sha256, vector FROM embeddings WHERE model_id = ? "
                f"AND text_sha256 IN ({marks})",
                [model_id, *part],
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, items: dict[str, NDArray[np.float32]]) -> None:
        if self._db is None:
            self._memory.update(items)
            return
        model_id = self.inner.model_id
        self._db.executemany(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
            [(model_id, k, v.astype(np.float32).tobytes()) for k, v in items.items()],
        )
        self._db.commit()

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        keys = [_text_key(t) for t in texts]
        with self._lock:
            found = self._lookup(sorted(set(keys)))
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in missing:
                missing[key] = text
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = self.inner.embed_documents(list(missing.values()))
            if vectors.shape[0] != len(missing):
                raise ConfigurationError(
                    f"embedder {self.inner.model_id} returned {vectors.shape[0]} vectors "
                    f"for {len(missing)} texts"
                )
            computed = dict(zip(missing, vectors, strict=True))
            with self._lock:
                self._store(computed)
            found.update(computed)
        if not keys:
            return np.zeros((0, self.inner.dimension), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        """Close the SQLite file, if any."""
        if self._db is not None:
            self._db.close()
            self._db = None
