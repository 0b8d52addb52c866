"""The local backend: a knowledge base in one folder, for one writing process at a time.

Everything the kb keeps lives in its folder (see ``docs/architecture.md``): the vector
store (Chroma, FAISS or the memory store's files), the BM25 index in ``keyword/``, the
record in ``index.sqlite``, the manifest ``ragkit.json`` and the writers' lock ``.lock``
(``flock``). Without a folder, all of it is kept in memory.

Writes follow the record's protocol, since a folder has no transaction spanning its
files: sources marked pending, then the store and the keyword index written, then
marked done. A crash at any point is repaired on the next write. Inside one process a
read-write lock keeps queries from seeing half a batch.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.backends._local_lock import KnowledgeBaseLock, ReadWriteLock
from ragkit.backends._local_record import RECORD_NAME, IndexRecord
from ragkit.backends.base import Batch
from ragkit.backends.manifest import Manifest
from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Embedder, Retriever, VectorStore

if TYPE_CHECKING:
    from ragkit.retrieval.keyword import KeywordIndex

__all__ = [
    "KEYWORD_FOLDER",
    "STORES",
    "IndexRecord",
    "KnowledgeBaseLock",
    "LocalBackend",
    "open_keyword_index",
    "open_store",
    "sync_keyword_index",
]

logger = logging.getLogger(__name__)

STORES = ("chroma", "faiss", "memory")
#: The keyword index's folder inside a knowledge base.
KEYWORD_FOLDER = "keyword"
_ID_BATCH = 1000


class LocalBackend:
    """A kb folder (or memory): a vector store, a keyword index, a record, a lock.

    Example:
        >>> backend = LocalBackend()  # in memory: a MemoryStore and an in-memory record
        >>> backend.store.count()
        0

    Args:
        folder: the kb folder; ``None`` keeps everything in memory and takes no lock.
        store: the vector store (default: a :class:`~ragkit.stores.MemoryStore`).
        keyword: the BM25 index kept in step with the store, or None (dense only).
        record: the record of indexed sources (default: ``folder/index.sqlite``, or in
            memory).
        name: what the manifest and ``RAG.store_name`` call the store.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        store: VectorStore | None = None,
        keyword: KeywordIndex | None = None,
        record: IndexRecord | None = None,
        name: str = "custom",
    ) -> None:
        if store is None:
            from ragkit.stores import MemoryStore

            store = MemoryStore()
        self.folder = folder
        self.name = name
        self.location = str(folder) if folder is not None else "(memory)"
        self.keyword = keyword
        self._store = store
        if record is None:
            record = IndexRecord(folder / RECORD_NAME if folder is not None else None)
        self._record = record
        self._rw = ReadWriteLock()
        self._lock = KnowledgeBaseLock(folder) if folder is not None else None

    @classmethod
    def open(
        cls,
        folder: Path | None,
        *,
        store: str | VectorStore | None = None,
        keyword: bool = True,
        keyword_scope: str = "auto",
    ) -> LocalBackend:
        """The kb in ``folder``: its store (by name, or the object given; by default the
        kind the folder was built with, else Chroma, or memory without a folder) and,
        with ``keyword``, its BM25 index, rebuilt from the store when missing or stale.

        Raises:
            ConfigurationError: ``store`` names another kind than the folder holds.
        """
        manifest = Manifest.read(folder) if folder is not None else None
        recorded = manifest.store if manifest else None
        if store is None or isinstance(store, str):
            kind = store or recorded or ("chroma" if folder else "memory")
            if recorded and recorded not in ("custom", kind):
                raise ConfigurationError(
                    f"{folder} holds a {recorded!r} store; open it with store={recorded!r} "
                    "(or build a new knowledge base in another folder)"
                )
            opened, name = open_store(kind, folder), kind
        else:
            opened, name = store, "custom"
        index = open_keyword_index(folder, opened, keyword_scope) if keyword else None
        return cls(folder, store=opened, keyword=index, name=name)

    @property
    def store(self) -> VectorStore:
        return self._store

    @property
    def record(self) -> IndexRecord:
        return self._record

    def read_manifest(self) -> Manifest | None:
        return Manifest.read(self.folder) if self.folder is not None else None

    def write_manifest(self, manifest: Manifest) -> None:
        if self.folder is not None:
            manifest.write(self.folder)

    def write(self, batch: Batch) -> None:
        """Apply ``batch`` in the record's protocol order (pending, chunks, done)."""
        store, keyword, record = self._store, self.keyword, self._record
        if batch.begin:
            record.begin(batch.begin)
        with self._rw.write():
            if batch.upsert:
                assert batch.vectors is not None  # Batch checks it
                store.upsert(batch.upsert, batch.vectors)
                if keyword is not None:
                    keyword.upsert(batch.upsert)
            if batch.delete:
                store.delete(batch.delete)
                if keyword is not None:
                    keyword.delete(batch.delete)
            if batch.reindex and keyword is not None:
                ids = sorted(batch.reindex)
                for i in range(0, len(ids), _ID_BATCH):
                    keyword.upsert(store.get(ids[i : i + _ID_BATCH]))
            if batch.put:
                record.put(batch.put)
            if batch.done or batch.removed:
                record.finish(done=batch.done, removed=batch.removed)

    def writing(self) -> AbstractContextManager[None]:
        """The folder's ``flock`` (none in memory); fails at once when another holds it."""
        return self._lock.hold() if self._lock is not None else nullcontext()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The read side of the in-process read-write lock: a batch whole or not at all."""
        with self._rw.read():
            yield

    def retriever(self, retrieval: str, embedder: Embedder) -> Retriever:
        from ragkit._build import build_retriever

        if retrieval != "dense" and self.keyword is None:
            raise ConfigurationError(
                f"{retrieval!r} retrieval needs the keyword index; open the backend with "
                "keyword=True"
            )
        return build_retriever(retrieval, embedder, self._store, self.keyword)

    def close(self) -> None:
        for part in (self._store, self.keyword, self._record):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def __repr__(self) -> str:
        return f"LocalBackend({self.location!r}, store={self.name!r})"


def open_store(kind: str, folder: Path | None) -> VectorStore:
    """The vector store ``kind`` saved in ``folder`` (in memory without one)."""
    if kind == "chroma":
        from ragkit.stores import ChromaStore

        return ChromaStore(path=folder / "chroma" if folder else None)
    if kind == "faiss":
        from ragkit.stores import FaissStore

        return FaissStore(path=folder / "faiss" if folder else None)
    if kind == "memory":
        from ragkit.stores import MemoryStore

        return MemoryStore(path=folder / "memory" if folder else None)
    raise ConfigurationError(f"unknown store {kind!r}; use one of {', '.join(STORES)} or a store")


def sync_keyword_index(index: KeywordIndex, store: VectorStore, batch: int = _ID_BATCH) -> int:
    """Make ``index`` hold exactly the store's chunks; returns how many were changed.

    Chunk ids are content hashes, so equal id sets mean equal contents. This repairs a
    knowledge base built before keyword search, or one whose last write was cut short.
    """
    wanted, held = set(store.ids()), set(index.ids())
    missing, extra = sorted(wanted - held), sorted(held - wanted)
    if extra:
        index.delete(extra)
    for i in range(0, len(missing), batch):
        index.upsert(store.get(missing[i : i + batch]))
    if missing or extra:
        logger.info(
            "keyword index re-synced with the store: %d chunks added, %d removed",
            len(missing),
            len(extra),
        )
    return len(missing) + len(extra)


def open_keyword_index(
    folder: Path | None, store: VectorStore, scope: str = "auto"
) -> KeywordIndex:
    """The kb's keyword index, rebuilt from the store when missing, unreadable or stale.

    ``scope`` only changes what BM25 scores (each chunk, each whole document, or whole
    documents when short: ``"auto"``); the saved index is the same for all three.
    """
    from ragkit.retrieval.keyword import KeywordIndex
    from ragkit.retrieval.scope import SCOPES

    if scope not in SCOPES:
        raise ConfigurationError(f"unknown keyword_scope {scope!r}; use one of {', '.join(SCOPES)}")

    path = folder / KEYWORD_FOLDER if folder is not None else None
    try:
        index = KeywordIndex(path, scope=scope)
    except StoreError as exc:
        assert path is not None  # an in-memory index cannot fail to load
        logger.warning("%s; rebuilding the keyword index from the vector store", exc)
        shutil.rmtree(path, ignore_errors=True)
        index = KeywordIndex(path, scope=scope)
    sync_keyword_index(index, store)
    return index
