"""The knowledge-base backend contract: everything with state, behind one object.

A backend owns what a knowledge base keeps between processes: chunks and their
vectors, the keyword index, the record of indexed sources (source -> content hash ->
chunk ids, pending/done), the manifest (embedder model id and dimension, chunker
settings) and the writers' lock. The indexer, its crash repair and ``sync`` talk to
this contract only; ``RAG`` opens a backend from a folder or a URL
(:func:`ragkit.backends.open_backend`) and never touches files or tables itself.

Three backends ship: the local folder (:class:`~ragkit.backends.local.LocalBackend`,
the default), PostgreSQL with pgvector and Milvus. The plain
:class:`~ragkit.protocols.VectorStore` protocol stays the contract for a user's own
store; ``RAG(store=obj)`` puts such a store in a local backend.

Writes go through :meth:`KnowledgeBaseBackend.write` as a :class:`Batch`. A batch says
which sources become pending (``begin``), which chunks are upserted and deleted, which
record entries are put, finished (``done``) or dropped (``removed``). A backend with
transactions applies the whole batch in one, so the record and the chunks never
disagree; the local folder applies it in the order of the record's protocol
(pending -> chunks and keyword index -> done), which a crash leaves repairable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ragkit.backends.manifest import Manifest
    from ragkit.protocols import Embedder, Retriever, VectorStore
    from ragkit.types import Chunk

__all__ = [
    "Batch",
    "Change",
    "KnowledgeBaseBackend",
    "Record",
    "RecordEntry",
    "settings_hash",
]


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-ready settings (chunker, embedder model)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One source as the record knows it.

    Attributes:
        source: the file path or document source.
        content_hash: sha256 of the content that produced the chunks; ``""`` when
            unknown (adopted from an older kb, or rolled back after a crash), which
            makes the next ``add`` re-check the source.
        chunk_ids: the source's chunk ids, sorted; while ``pending``, the target ones.
        settings_hash: hash of the settings that produced the chunks.
        state: ``"done"``, or ``"pending"`` while (or if a crash stopped) a write.
        previous_ids: while pending, the chunk ids the source had before the write.
    """

    source: str
    content_hash: str
    chunk_ids: tuple[str, ...]
    settings_hash: str
    state: str = "done"
    previous_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """A write about to happen to one source: it becomes pending with ``chunk_ids`` as
    its target and ``previous_ids`` as what it had."""

    source: str
    content_hash: str
    settings_hash: str
    chunk_ids: tuple[str, ...]
    previous_ids: tuple[str, ...]


@dataclass(frozen=True)
class Batch:
    """One write to a knowledge base, applied in this order.

    Attributes:
        begin: sources marked pending (their target and previous chunk ids).
        upsert: chunks inserted or replaced by id, with ``vectors`` (row ``i`` is
            ``upsert[i]``'s).
        delete: chunk ids removed (unknown ids are ignored).
        reindex: chunk ids the store holds whose keyword entries must be written again
            (crash repair of a backend whose keyword index is kept apart from its store).
        put: record entries written as they are, state ``done``.
        done: pending sources marked done.
        removed: sources whose record entries are dropped.
    """

    begin: Sequence[Change] = ()
    upsert: Sequence[Chunk] = ()
    vectors: NDArray[np.float32] | None = None
    delete: Sequence[str] = ()
    reindex: Sequence[str] = ()
    put: Sequence[RecordEntry] = ()
    done: Sequence[str] = ()
    removed: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.upsert and (self.vectors is None or len(self.vectors) != len(self.upsert)):
            raise ValueError("a Batch's vectors must have one row per upserted chunk")


@runtime_checkable
class Record(Protocol):
    """The reading side of the record of indexed sources (writes go through a Batch)."""

    def get(self, source: str) -> RecordEntry | None:
        """The entry of ``source``, or None when it is not indexed."""
        ...

    def entries(self) -> dict[str, RecordEntry]:
        """Every entry, by source."""
        ...

    def sources(self) -> list[str]:
        """Every recorded source, sorted."""
        ...

    def pending(self) -> list[RecordEntry]:
        """Entries whose last write did not finish, sorted by source."""
        ...

    def chunk_total(self) -> int:
        """Number of chunk ids over all entries (what the store should hold)."""
        ...

    def count(self) -> int:
        """Number of recorded sources."""
        ...


@runtime_checkable
class KnowledgeBaseBackend(Protocol):
    """Where a knowledge base lives: chunks, vectors, keyword index, record, manifest, lock.

    Attributes:
        name: what ``RAG.store_name`` reports and the manifest records (``"chroma"``,
            ``"faiss"``, ``"memory"`` or ``"custom"`` for a folder; ``"postgresql"``,
            ``"milvus"``).
        location: the folder, or the URL without its password: for messages.
        store: the chunks and their vectors, as a :class:`~ragkit.protocols.VectorStore`.
        record: the record of indexed sources.
    """

    name: str
    location: str

    @property
    def store(self) -> VectorStore:
        """The chunks and vectors."""
        ...

    @property
    def record(self) -> Record:
        """What is indexed, per source."""
        ...

    def read_manifest(self) -> Manifest | None:
        """How the kb was built, or None for a new kb."""
        ...

    def write_manifest(self, manifest: Manifest) -> None:
        """Save the manifest (whole, or not at all)."""
        ...

    def write(self, batch: Batch) -> None:
        """Apply ``batch``: in one transaction where the engine has them."""
        ...

    def writing(self) -> AbstractContextManager[None]:
        """Hold the kb's writers' lock for the ``with`` block (re-entrant per object).

        Raises :class:`~ragkit.errors.KnowledgeBaseLockedError` when another writer
        holds it (at once, or after the backend's wait).
        """
        ...

    def reading(self) -> AbstractContextManager[None]:
        """One consistent view of the kb for the ``with`` block: a query inside it sees
        every batch whole or not at all. Never waits on another process's writes."""
        ...

    def retriever(self, retrieval: str, embedder: Embedder) -> Retriever:
        """The default retriever for ``retrieval`` (``"hybrid"``, ``"dense"``,
        ``"keyword"``) over this kb, embedding queries with ``embedder``."""
        ...

    def close(self) -> None:
        """Release files, connections and pools."""
        ...
