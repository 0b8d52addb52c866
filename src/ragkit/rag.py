"""``RAG``: the whole pipeline in one object, on embedded defaults."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit._build import Retrieval, check_retrieval, chunker_settings, sentence_embedder
from ragkit.backends import LocalSettings, Settings, open_backend, parse_location
from ragkit.backends.manifest import Manifest
from ragkit.backends.urls import DEFAULT_TENANT
from ragkit.chain import RetrievalQA
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError
from ragkit.indexing.indexer import Indexer, Progress, Source
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
from ragkit.types import (
    Answer,
    Hits,
    IndexReport,
    StreamEvent,
    text_then_answer,
)

if TYPE_CHECKING:
    from ragkit.backends.base import KnowledgeBaseBackend, Record
    from ragkit.chat import Chat
    from ragkit.retrieval.history import History
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
        path: where the knowledge base lives: a folder (created if missing; ``None``
            keeps everything in memory), ``"postgresql://user@host/db?kb=name"``
            (PostgreSQL with pgvector: chunks, keyword index, record and lock all in
            the database, shared by any number of processes) or
            ``"milvus://host:port?collection=name"``. See ``docs/deployment.md``.
        store: for a folder: ``"chroma"``, ``"faiss"``, ``"memory"`` or a store object.
            By default the backend the folder was built with, else Chroma (memory
            without a path).
        embedder: any :class:`~ragkit.protocols.Embedder`; default MiniLM. Vectors are
            cached by (model id, text hash), in ``path/embeddings.sqlite`` when there is
            a folder (in memory for a database, which keeps no cache).
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
        tenant: who owns the kb: recorded when it is created (default ``default``);
            for a database URL it chooses the tenant's kb of that name (the same as
            ``&tenant=`` in the URL). Opening a folder kb with another tenant than the
            one recorded is an error.

    Writes (``add``, ``sync``, ``delete``) are incremental and crash safe, and hold the
    kb's writers' lock (a folder's ``path/.lock``: a second process writing the same
    folder gets :class:`~ragkit.errors.KnowledgeBaseLockedError`; a database's advisory
    lock, which a second writer waits for). Reads need no lock; one object serves
    ``ask``/``retrieve`` from many threads while it indexes, and a query sees each
    indexed batch completely or not at all. See ``docs/updating.md``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Settings | None = None,
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
        tenant: str | None = None,
    ) -> None:
        check_retrieval(retrieval)
        settings = parse_location(path)
        if tenant is not None and not isinstance(settings, LocalSettings):
            from ragkit.backends.catalog import check_tenant

            settings = replace(settings, tenant=check_tenant(tenant))
        self.path = settings.path if isinstance(settings, LocalSettings) else None
        self.tenant: str = tenant or str(getattr(settings, "tenant", DEFAULT_TENANT))
        self._lock = threading.RLock()
        keyword = retriever is None and retrieval != "dense"
        backend = open_backend(settings, store=store, keyword=keyword, keyword_scope=keyword_scope)
        self.backend: KnowledgeBaseBackend = backend
        self.location = backend.location
        try:
            self._assemble(
                embedder, chunker, loader, retriever=retriever, generator=generator,
                reranker=reranker, fetch_k=fetch_k, retrieval=retrieval, verify=verify, k=k,
                cache=cache, tenant=tenant,
            )  # fmt: skip
        except BaseException:
            backend.close()  # its pool or files, not left to the garbage collector
            raise

    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str], *, kb: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> RAG:  # fmt: skip
        """Open the pipeline a ``ragkit.toml`` (or ``.yaml``, ``.json``) file describes.

        Example:
            >>> rag = RAG.from_config("ragkit.toml")  # doctest: +SKIP

        Args:
            config: the file; see :mod:`ragkit.config` and ``docs/configuration.md``.
            kb: the knowledge base, instead of the file's ``kb``.
            overrides: ``RAG`` arguments that win over the file's.

        Raises:
            ConfigurationError: the file is unreadable, or a key is unknown, mistyped or
                a secret; the message names the key.
        """
        from ragkit.config import RagkitConfig

        return RagkitConfig.from_file(config).rag(kb, **overrides)

    def _assemble(
        self,
        embedder: Embedder | None,
        chunker: Chunker | None,
        loader: Loader | None,
        *,
        retriever: Retriever | None,
        generator: Generator | None,
        reranker: Reranker | None,
        fetch_k: int | None,
        retrieval: Retrieval,
        verify: bool,
        k: int,
        cache: bool,
        tenant: str | None,
    ) -> None:
        """The stages around the backend: embedder, chunker, loader, retriever, chain."""
        backend = self.backend
        if embedder is None:
            embedder = self._default_embedder()
        manifest = self._check_manifest(embedder, tenant)
        self._cache = cache
        self._set_embedder(self._recorded_adapter(embedder, manifest))
        # The generator and the verifier embed passage and answer sentences: not chunks,
        # so not cached in the kb; they share the vectors of one question in memory.
        answer_embedder = sentence_embedder(self._plain_embedder)
        self.store_name = backend.name
        self.store: VectorStore = backend.store
        self.record: Record = backend.record
        #: The folder's BM25 index (None for a database, which keeps its own).
        self.keyword: KeywordIndex | None = getattr(backend, "keyword", None)

        if chunker is None:
            from ragkit.chunking import RecursiveChunker

            chunker = RecursiveChunker()
        if loader is None:
            from ragkit.loaders import AutoLoader

            loader = AutoLoader()
        self.retrieval = "custom" if retriever is not None else retrieval
        if retriever is None:
            retriever = backend.retriever(retrieval, self.embedder)
        if generator is None:
            from ragkit.generation import ExtractiveGenerator

            generator = ExtractiveGenerator(embedder=answer_embedder)
        self.chunker = chunker
        self.indexer = Indexer(loader, chunker, self.embedder, backend)
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
            tenant=self.tenant,
        )
        self._checked = False
        self._recover_if_free()

    def _default_embedder(self) -> Embedder:
        """The bundled MiniLM, or the model folder the kb recorded (``RAG.reembed``)."""
        from ragkit.embeddings import SentenceTransformerEmbedder

        manifest = self.backend.read_manifest()
        if manifest is not None and manifest.embedder_path:
            if not Path(manifest.embedder_path).is_dir():
                raise ConfigurationError(
                    f"{self.location} is embedded with the model folder "
                    f"{manifest.embedder_path}, which is gone; restore it, or pass "
                    "embedder=... for the same model"
                )
            return SentenceTransformerEmbedder(
                manifest.embedder_path, model_id=manifest.embedder_model
            )
        return SentenceTransformerEmbedder()

    def _recorded_adapter(self, embedder: Embedder, manifest: Manifest | None) -> Embedder:
        """``embedder`` with the query adapter the kb records (``use_query_adapter``),
        unless it brings its own or is not the kb's model (a re-embedding to finish)."""
        path = manifest.query_adapter if manifest is not None else ""
        if not path or _unadapted(embedder) is not embedder:
            return embedder
        from ragkit.embeddings.adapted import AdaptedEmbedder, load_query_adapter

        try:
            adapter = load_query_adapter(path)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{self.location} moves its queries with a query adapter that cannot be "
                f"read ({exc}); restore it, or stop using it: ragkit finetune use --kb "
                f"{self.location} --no-adapter"
            ) from exc
        if adapter.model_id != embedder.model_id:
            return embedder
        return AdaptedEmbedder(embedder, adapter)

    def _set_embedder(self, embedder: Embedder) -> None:
        """``self.embedder``: ``embedder`` through the kb's cache, its query adapter (if
        any) outside the cache, so document vectors are the plain model's and
        ``_plain_embedder`` (answers, citation checks, fitting an adapter) moves nothing."""
        plain = _unadapted(embedder)
        self._plain_embedder = plain
        cached = self._cached(plain)
        self.embedder: Embedder = cached
        if plain is not embedder:
            from ragkit.embeddings.adapted import AdaptedEmbedder

            self.embedder = AdaptedEmbedder(cached, embedder.adapter)  # type: ignore[attr-defined]

    def _cached(self, embedder: Embedder) -> Embedder:
        if not self._cache:
            return embedder
        from ragkit.embeddings import CachedEmbedder

        cache_file = self.path / "embeddings.sqlite" if self.path else None
        return CachedEmbedder(embedder, cache_file)

    def reembed(
        self,
        embedder: Embedder,
        *,
        path: str | os.PathLike[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Make ``embedder`` this kb's embedder: every vector rewritten with it.

        For a fine-tuned model (``ragkit finetune embedder``): its folder is recorded
        in the kb, and ``RAG(path)`` opened without an embedder loads it. Vectors go
        through the kb's embedding cache, so an interrupted run resumes where it
        stopped; until it finishes, only ``embedder`` can open the kb. Chunks, texts
        and the keyword index are unchanged. See ``docs/finetuning.md``.

        Returns:
            ``chunks``, ``embedded`` (computed, not from the cache), ``model_id``,
            ``dimension``, ``path``.

        Raises:
            KnowledgeBaseLockedError: another process is writing this knowledge base.
            EmbedderMismatchError: the new vectors have another length.
        """
        from ragkit.training.reembed import reembed

        return dict(reembed(self, embedder, path=path, progress=progress))

    def use_query_adapter(self, folder: str | os.PathLike[str] | None) -> None:
        """Move this kb's retrieval queries with the query adapter in ``folder`` (what
        ``ragkit finetune adapter`` promoted), or with none when ``folder`` is None.

        The folder is recorded in the kb: ``RAG(path)`` opened without an embedder
        applies it (a server's kbs too). No vector is rewritten; answers and citation
        checks keep the plain query. Re-embedding the kb with another model drops it.
        See ``docs/finetuning.md``.

        Raises:
            ConfigurationError: no adapter in ``folder``, or one made for another model.
            KnowledgeBaseLockedError: another process is writing this knowledge base.
        """
        from ragkit.embeddings.adapted import AdaptedEmbedder, load_query_adapter

        plain = self._plain_embedder
        embedder: Embedder = plain
        path = ""
        if folder is not None:
            embedder = AdaptedEmbedder(plain, load_query_adapter(folder))
            path = str(Path(folder).resolve())
        with self._lock, self.backend.writing():
            manifest = self.backend.read_manifest() or self._manifest
            manifest.query_adapter = path
            self.backend.write_manifest(manifest)
        self._use_embedder(embedder, manifest)

    def _use_embedder(self, embedder: Embedder, manifest: Manifest) -> None:
        """Switch to ``embedder`` after :meth:`reembed` rewrote the vectors."""
        old = self.embedder
        self._set_embedder(embedder)
        self.indexer.embedder = self.embedder
        if self.retrieval != "custom":
            self.qa.retriever = self.backend.retriever(self.retrieval, self.embedder)
        self._manifest = manifest
        self._checked = False
        close = getattr(_unadapted(old), "close", None)  # the cache's file
        if callable(close):
            close()

    def _check_manifest(self, embedder: Embedder, tenant: str | None) -> Manifest | None:
        """The kb's manifest, checked against the embedder and the tenant asked for."""
        manifest = self.backend.read_manifest()
        if manifest is not None:
            manifest.check_embedder(embedder.model_id, self.location)
            if tenant is not None and manifest.tenant != tenant:
                raise ConfigurationError(
                    f"{self.location} belongs to the tenant {manifest.tenant!r}, not {tenant!r}"
                )
            self.tenant = manifest.tenant
        return manifest

    def _recover_if_free(self) -> None:
        """Repair an interrupted write now, unless another process is writing."""
        with self.backend.reading():  # one snapshot: a batch committed meanwhile is whole
            clean = not self.record.pending() and self.record.chunk_total() == self.store.count()
        if clean:
            return
        try:
            with self.backend.writing():
                self.indexer.recover()
        except KnowledgeBaseLockedError:
            logger.info("%s is being written by another process; not repairing", self.location)

    def _prepare_write(self) -> None:
        """Check the embedder's dimension against the kb and record it, once."""
        if self._checked:
            return
        dimension = self.embedder.dimension
        # Another process may have written the kb since this one opened it.
        stored = self.backend.read_manifest()
        if stored is not None:
            stored.check_embedder(self.embedder.model_id, self.location)
            self._manifest = stored
        self._manifest.check_dimension(dimension, self.location)
        if self._manifest.dimension != dimension or stored is None:
            self._manifest.dimension = dimension
            self.backend.write_manifest(self._manifest)
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
        with self._lock, self.backend.writing():
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
        with self._lock, self.backend.writing():
            self._prepare_write()
            report = self.indexer.sync(path, include=include, exclude=exclude, progress=progress)
        logger.info("synced: %s", report)
        return report

    def delete(self, source: str | Path) -> int:
        """Remove every chunk of ``source``; returns how many chunks were removed.

        Raises:
            KnowledgeBaseLockedError: another process is writing this knowledge base.
        """
        with self._lock, self.backend.writing():
            return self.indexer.delete(str(source))

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Hits:
        """The chunks most relevant to ``query``, best first; with ``history`` (the
        conversation before it, ``[{"role": "user"|"assistant", "content": ...}]``),
        to the standalone query built from both (see ``docs/conversations.md``).

        A :class:`~ragkit.types.Hits`: a plain ``list[ScoredChunk]`` that a notebook
        shows as a table."""
        with self.backend.reading():
            return Hits(self.qa.retrieve(query, k, filters, history=history))

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Answer:
        """Answer ``question`` from the indexed documents, citing them; ``history``
        makes it a follow-up of that conversation (``Answer.question`` stays
        ``question``)."""
        with self.backend.reading():
            return self.qa.ask(question, k, filters, history=history)

    def chat(self, history: History | None = None) -> Chat:
        """A conversation that keeps its history: follow-ups are asked after it.

        Example:
            >>> chat = rag.chat()  # doctest: +SKIP
            >>> chat.ask("What is the no-store directive?")  # doctest: +SKIP
            >>> chat.ask("Does it apply to shared caches?")  # doctest: +SKIP
        """
        from ragkit.chat import Chat

        return Chat(self, history)

    def stream(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer text as it is verified, then the complete :class:`Answer`;
        the text pieces joined are the answer's text (see :meth:`events`)."""
        yield from text_then_answer(self.events(question, k, filters, history=history))

    def events(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Iterator[StreamEvent]:
        """The answer as events: sources, verified text and citations, then the Answer.

        See :meth:`ragkit.chain.RetrievalQA.events`; what ``ragkit serve`` streams as
        server-sent events.
        """
        items = self.qa.events(question, k, filters, history=history)
        with self.backend.reading():  # retrieval runs before the first event
            first = next(items, None)
        if first is not None:
            yield first
            yield from items

    def stats(self) -> dict[str, Any]:
        """What is indexed: sources, chunks, embedder, store."""
        with self.backend.reading():
            sources, chunks = self.record.count(), self.store.count()
        return {
            "path": str(self.path) if self.path else None,
            "location": self.location,
            "sources": sources,
            "chunks": chunks,
            "embedder": self.embedder.model_id,
            "dimension": self._manifest.dimension or None,
            "store": self.store_name,
            "retrieval": self.retrieval,
        }

    def close(self) -> None:
        """Release the backend's files or connections and the embedding cache."""
        self.backend.close()
        close = getattr(self.embedder, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unadapted(embedder: Embedder) -> Embedder:
    """``embedder`` without its query adapter. Until a query adapter is in use its
    module is not loaded (``import ragkit`` loads no numpy), and nothing is adapted."""
    adapted = sys.modules.get("ragkit.embeddings.adapted")
    return embedder if adapted is None else adapted.unadapted(embedder)
