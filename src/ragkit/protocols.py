"""The contracts between pipeline stages.

Each stage is a :class:`typing.Protocol`: any object with the right methods fits the
slot, no inheritance needed. A minimal custom retriever::

    class MyRetriever:
        def retrieve(self, query, k=4, filters=None):
            return [ScoredChunk(chunk=..., score=1.0)]

    RetrievalQA(MyRetriever(), ExtractiveGenerator())
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ragkit.types import Chunk, Document, Generation, ScoredChunk

__all__ = [
    "Chunker",
    "Embedder",
    "Filters",
    "Generator",
    "Loader",
    "Reranker",
    "Retriever",
    "StreamingGenerator",
    "StreamingLoader",
    "VectorStore",
]

#: Metadata filter: ``{"source": "a.md"}`` (equality), ``{"lang": {"$in": ["en", "de"]}}``,
#: ``{"lang": {"$ne": "fr"}}``, ``{"page": {"$nin": [1, 2]}}``. Several keys are ANDed.
Filters = Mapping[str, Any]


@runtime_checkable
class Loader(Protocol):
    """Turns one file into documents (one, or several for CSV rows and JSON Lines)."""

    def load(self, path: Path) -> list[Document]:
        """Read ``path``; raise :class:`ragkit.errors.LoaderError` naming it on failure."""
        ...


@runtime_checkable
class StreamingLoader(Loader, Protocol):
    """A loader that can also hand out a big file a window at a time (optional).

    The indexer calls ``windows`` before ``load`` when a loader has it. Returning None
    means "load it whole"; otherwise the windows are chunked, embedded and written one
    at a time, so a file of any size is indexed in bounded memory. A user's loader
    needs only ``load``.
    """

    def windows(self, path: Path) -> Iterator[tuple[int, Document]] | None:
        """None, or ``(offset, document)`` windows of the text of one document.

        Each window's ``document.text`` is the characters ``offset`` to
        ``offset + len(text)`` of the file's whole text, the windows following each
        other without gap; every window has the ``source`` and ``id`` of the whole
        document. Chunk offsets are shifted by ``offset``, so they count from the start
        of the file. Raise :class:`ragkit.errors.LoaderError` naming the file on
        failure, before the first window where possible.
        """
        ...


@runtime_checkable
class Chunker(Protocol):
    """Splits a document into chunks whose offsets point back into the document."""

    def split(self, document: Document) -> list[Chunk]:
        """Chunks in document order; ``document.text[c.start:c.end] == c.text``."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Maps text to unit-length vectors."""

    @property
    def model_id(self) -> str:
        """Identifies the model; recorded in a knowledge base and in cache keys."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One normalized row per text, shape ``(len(texts), dimension)``."""
        ...

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """One normalized vector, shape ``(dimension,)``."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    """Holds chunks with their vectors; searches by inner product on unit vectors."""

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        """Insert or replace chunks by id; row ``i`` of ``embeddings`` is ``chunks[i]``'s."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        ...

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        ...

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks that match ``filters``, best first.

        Filters are applied before the top-k cut, so fewer than ``k`` results means
        fewer than ``k`` chunks match.
        """
        ...

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``."""
        ...

    def count(self) -> int:
        """Number of stored chunks."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks most relevant to a query."""

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        """Best first, at most ``k``."""
        ...


@runtime_checkable
class Reranker(Protocol):
    """Reorders retrieved chunks, usually with a costlier model."""

    def rerank(self, query: str, hits: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        """At most ``k`` of ``hits``, best first, with the reranker's scores."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Writes an answer from numbered contexts."""

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        """Answer ``question`` from ``contexts`` (best first), citing them as ``[n]``."""
        ...


@runtime_checkable
class StreamingGenerator(Generator, Protocol):
    """A generator that can also hand out its text as it is written."""

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        """Yield text deltas, then, last, the complete :class:`Generation`."""
        ...
