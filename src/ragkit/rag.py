"""``RAG``: the whole pipeline in one object, on embedded defaults."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit._build import (
    Retrieval,
    build_retriever,
    check_retrieval,
    chunker_settings,
    open_keyword_index,
    open_store,
    sentence_embedder,
)
from ragkit.chain import RetrievalQA
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError
from ragkit.indexing.indexer import Indexer, Progress, Source
from ragkit.indexing.lock import KnowledgeBaseLock, ReadWriteLock
from ragkit.indexing.manifest import Manifest
from ragkit.indexing.record import RECORD_NAME, IndexRecord
from ragkit.protocols import (
    Chunker,
    Embedder,
    Filters,
    Generator,
    Loader,
    Reranker,
    Retriever,
    VectorStore,
)
from ragkit.types import Answer, IndexReport, ScoredChunk

if TYPE_CHECKING:
    from ragkit.retrieval.keyword import KeywordIndex

__all__ = ["RAG"]

logger = logging.getLogger(__name__)


class RAG:
    """Index documents and answer questions about them, with citations.

    Defaults run offline: the bundled all-MiniLM-L6-v2 embedder, a Chroma store in the
    knowledge-base folder, hybrid retrieval (embeddings and BM25 keywords, fused), and
    extractive answers (no language model needed). Every component can be replaced by
    any object that fits its slot.

    Example:
        >>> from ragkit import RAG
        >>> rag = RAG("./kb")  # doctest: +SKIP
        >>> report = rag.add("docs/")  # doctest: +SKIP
        >>> print(rag.ask("How do I set a timeout?"))  # doctest: +SKIP

    Args:
        path: the knowledge-base folder (created if missing). ``None`` keeps everything
            in memory.
        store: ``"chroma"``, ``"faiss"``, ``"memory"`` or a store object. By default
            the backend the folder was built with, else Chroma (memory without a path).
        embedder: any :class:`~ragkit.protocols.Embedder`; default MiniLM. Vectors are
            cached by (model id, text hash), in ``path/embeddings.sqlite`` when there is
            a folder.
        chunker: default :class:`~ragkit.chunking.RecursiveChunker`.
        loader: default :class:`~ragkit.loaders.AutoLoader` (format by content).
        retrieval: what the default retriever uses: ``"hybrid"`` (dense and BM25
            keyword results fused by min-max normalized scores, 0.5/0.5; chosen on
            SciFact train, see ``docs/benchmarks.md``), ``"dense"`` or
            ``"keyword"``. Hybrid and keyword keep a BM25 index in ``path/keyword/``,
            rebuilt from the store when it is missing or out of date.
        keyword_scope: what BM25 scores. ``"auto"`` (default): a document of at most
            7 chunks as a whole, each of its chunks getting the document's score (an
            abstract then matches on all its words: +0.013 hybrid nDCG@10 on SciFact
            train), a longer document chunk by chunk; ``"chunk"``: every chunk on its
            own text; ``"document"``: every chunk as its whole document, however long.
        retriever: replaces the default retriever (``retrieval`` is then ignored).
        generator: default :class:`~ragkit.generation.ExtractiveGenerator`.
        reranker: optional re-ranking of retrieved chunks.
        fetch_k: with a reranker, how many chunks are retrieved for it to order
            (default ``4 * k``; ``k`` keeps a model-based reranker's cost at ``k``
            calls).
        verify: check every claim of an answer against the retrieved passages, quote the
            supporting sentences, flag unsupported claims, and refuse when nothing
            retrieved is relevant enough (:class:`~ragkit.verification.CitationVerifier`).
        k: chunks given to the generator per question.

    Writes (``add``, ``sync``, ``delete``) are incremental and crash safe, and hold the
    folder's lock file (``path/.lock``): a second process writing the same folder gets
    :class:`~ragkit.errors.KnowledgeBaseLockedError`. Reads need no lock; one object
    serves ``ask``/``retrieve`` from many threads while it indexes, and a query sees
    each indexed batch completely or not at all. See ``docs/updating.md``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        store: str | VectorStore | None = None,
        embedder: Embedder | None = None,
        chunker: Chunker | None = None,
        loader: Loader | None = None,
        retriever: Retriever | None = None,
        generator: Generator | None = None,
        reranker: Reranker | None = None,
        fetch_k: int | None = None,
        retrieval: Retrieval = "hybrid",
        keyword_scope: str = "auto",
        verify: bool = True,
        k: int = 4,
        cache: bool = True,
    ) -> None:
        check_retrieval(retrieval)
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        manifest = Manifest.read(self.path) if self.path else None

        if embedder is None:
            from ragkit.embeddings import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder()
        if manifest is not None and self.path is not None:
            manifest.check_embedder(embedder.model_id, self.path)
        # The generator and the verifier embed passage and answer sentences: not chunks,
        # so not cached in the kb; they share the vectors of one question in memory.
        answer_embedder = sentence_embedder(embedder)
        if cache:
            from ragkit.embeddings import CachedEmbedder

            cache_file = self.path / "embeddings.sqlite" if self.path else None
            embedder = CachedEmbedder(embedder, cache_file)
        self.embedder: Embedder = embedder

        recorded = manifest.store if manifest else None
        if store is None or isinstance(store, str):
            kind = store or recorded or ("chroma" if self.path else "memory")
            if recorded and recorded not in ("custom", kind):
                raise ConfigurationError(
                    f"{self.path} holds a {recorded!r} store; open it with store={recorded!r} "
                    "(or build a new knowledge base in another folder)"
                )
            self.store_name = kind
            self.store: VectorStore = open_store(kind, self.path)
        else:
            self.store_name = "custom"
            self.store = store

        if chunker is None:
            from ragkit.chunking import RecursiveChunker

            chunker = RecursiveChunker()
        if loader is None:
            from ragkit.loaders import AutoLoader

            loader = AutoLoader()
        self.retrieval = "custom" if retriever is not None else retrieval
        self.keyword: KeywordIndex | None = None
        if retriever is None:
            if retrieval != "dense":
                self.keyword = open_keyword_index(self.path, self.store, keyword_scope)
            retriever = build_retriever(retrieval, self.embedder, self.store, self.keyword)
        if generator is None:
            from ragkit.generation import ExtractiveGenerator

            generator = ExtractiveGenerator(embedder=answer_embedder)
        self.chunker = chunker
        self.indexer = self._setup_writes(loader, chunker)
        verifier = None
        if verify:
            from ragkit.verification import CitationVerifier

            verifier = CitationVerifier(answer_embedder)
        self.qa = RetrievalQA(
            retriever, generator, reranker, verifier=verifier, k=k, fetch_k=fetch_k
        )
        self._manifest = manifest or Manifest(
            embedder_model=self.embedder.model_id,
            store=self.store_name,
            chunker=chunker_settings(chunker),
        )
        self._checked = False
        self._recover_if_free()

    def _setup_writes(self, loader: Loader, chunker: Chunker) -> Indexer:
        """The indexer, the record, the kb lock and the lock between readers and writes."""
        self._rw = ReadWriteLock()
        self._kb_lock = KnowledgeBaseLock(self.path) if self.path is not None else None
        self.record = IndexRecord(self.path / RECORD_NAME if self.path is not None else None)
        return Indexer(
            loader,
            chunker,
            self.embedder,
            self.store,
            keyword=self.keyword,
            record=self.record,
            write_guard=self._rw.write,
        )

    def _recover_if_free(self) -> None:
        """Repair an interrupted write now, unless another process is writing."""
        if not self.record.pending() and self.record.chunk_total() == self.store.count():
            return
        try:
            with self._writing():
                self.indexer.recover()
        except KnowledgeBaseLockedError:
            logger.info("%s is being written by another process; not repairing", self.path)

    def _writing(self) -> AbstractContextManager[None]:
        return self._kb_lock.hold() if self._kb_lock is not None else nullcontext()

    def _prepare_write(self) -> None:
        """Check the embedder's dimension against the kb and record it, once."""
        if self._checked:
            return
        dimension = self.embedder.dimension
        if self.path is not None:
            self._manifest.check_dimension(dimension, self.path)
            self._manifest.dimension = dimension
            self._manifest.write(self.path)
        self._checked = True

    def add(
        self,
        *sources: Source | Sequence[Source],
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index files, folders and :class:`~ragkit.types.Document` objects.

        Incremental: a file whose bytes (and the chunker settings) are unchanged since it
        was indexed is skipped without being read again, a changed one has its chunks
        replaced, a new one is added. Files that fail are listed in the report with the
        reason; the rest is indexed.

        Raises:
            KnowledgeBaseLockedError: another process is writing this knowledge base.
        """
        flat: list[Source] = []
        for item in sources:
            if isinstance(item, (str, Path)) or not isinstance(item, Sequence):
                flat.append(item)
            else:
                flat.extend(item)
        with self._lock, self._writing():
            self._prepare_write()
            report = self.indexer.add(flat, include=include, exclude=exclude, progress=progress)
        logger.info("indexed: %s", report)
        return report

    def sync(
        self,
        path: str | Path,
        *,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Make the index match the folder (or file) ``path``.

        Like :meth:`add`, and also deletes the chunks of sources under ``path`` that
        are gone (or no longer match ``include``/``exclude``); they are listed in
        ``report.deleted``.

        Raises:
            KnowledgeBaseLockedError: another process is writing this knowledge base.
        """
        with self._lock, self._writing():
            self._prepare_write()
            report = self.indexer.sync(path, include=include, exclude=exclude, progress=progress)
        logger.info("synced: %s", report)
        return report

    def delete(self, source: str | Path) -> int:
        """Remove every chunk of ``source``; returns how many chunks were removed.

        Raises:
            KnowledgeBaseLockedError: another process is writing this knowledge base.
        """
        with self._lock, self._writing():
            return self.indexer.delete(str(source))

    def retrieve(
        self, query: str, k: int | None = None, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The chunks most relevant to ``query``, best first."""
        with self._rw.read():
            return self.qa.retrieve(query, k, filters)

    def ask(self, question: str, k: int | None = None, filters: Filters | None = None) -> Answer:
        """Answer ``question`` from the indexed documents, citing them."""
        with self._rw.read():
            return self.qa.ask(question, k, filters)

    def stream(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> Iterator[str | Answer]:
        """Yield the answer text as it is written, then the complete :class:`Answer`."""
        items = self.qa.stream(question, k, filters)
        with self._rw.read():  # retrieval runs before the first item
            first = next(items, None)
        if first is not None:
            yield first
            yield from items

    def stats(self) -> dict[str, Any]:
        """What is indexed: sources, chunks, embedder, store."""
        ids = self.store.ids()
        sources: set[str] = set()
        for i in range(0, len(ids), 1000):
            sources.update(c.source for c in self.store.get(ids[i : i + 1000]))
        return {
            "path": str(self.path) if self.path else None,
            "sources": len(sources),
            "chunks": len(ids),
            "embedder": self.embedder.model_id,
            "dimension": self._manifest.dimension or None,
            "store": self.store_name,
            "retrieval": self.retrieval,
        }

    def close(self) -> None:
        """Release files held by the store, the keyword index and the embedding cache."""
        for part in (self.store, self.keyword, self.embedder, self.record):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
