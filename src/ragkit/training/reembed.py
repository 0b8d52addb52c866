"""Using a fine-tuned embedder: rewrite a kb's vectors with it, safely.

:func:`reembed` is what ``RAG.reembed(embedder)`` and ``ragkit finetune use`` run:

1. mark the manifest (``reembedding``: the new model id) so that a crash in the
   middle is seen by the next ``RAG`` open, which then refuses to mix the two
   models' vectors and says to run the command again;
2. embed every chunk with the new model, through the kb's embedding cache keyed by
   the new model id: an interrupted run resumes where it stopped, and re-embedding
   with a model already used costs nothing (that is the incremental part);
3. write the vectors back as one :class:`~ragkit.backends.base.Batch` per page
   (chunks keep their ids, texts and metadata), and record entries with the
   settings hash of the new embedder, so the next ``add`` skips unchanged files;
4. write the manifest: the new model id, dimension and model folder
   (``embedder_path``), which ``RAG`` loads when it is opened without an embedder.

The kb's writers' lock is held throughout.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.backends.base import Batch, settings_hash
from ragkit.errors import ConfigurationError, EmbedderMismatchError
from ragkit.training.pairs import Progress
from ragkit.training.promote import model_id_of

if TYPE_CHECKING:
    from ragkit.protocols import Embedder

__all__ = ["ReembedReport", "reembed"]

logger = logging.getLogger(__name__)


class ReembedReport(dict[str, Any]):
    """What :func:`reembed` did: ``chunks``, ``embedded`` (not from the cache),
    ``model_id``, ``dimension``, ``path``."""


def reembed(
    rag: Any,
    embedder: Embedder,
    *,
    path: str | os.PathLike[str] | None = None,
    page: int = 512,
    progress: Progress | None = None,
) -> ReembedReport:
    """Make ``embedder`` the kb's embedder and rewrite every vector with it.

    Args:
        rag: an open :class:`~ragkit.RAG`.
        embedder: the new embedder (e.g. ``SentenceTransformerEmbedder(DIR)``).
        path: the model folder recorded in the manifest (default: the embedder's
            model folder when it has one), so ``RAG(kb)`` opens it again by itself.
        page: chunks per write.
        progress: called with ``("reembed", done, total)``.

    Returns:
        A :class:`ReembedReport`; ``rag`` now retrieves with the new vectors.
    """
    from ragkit.embeddings import CachedEmbedder

    backend = rag.backend
    inner = embedder
    cache = CachedEmbedder(inner, rag.path / "embeddings.sqlite" if rag.path else None)
    if path is None:
        # Recorded only for a fine-tuned folder: a hub name or the bundled model is
        # found again without it.
        ref = getattr(inner, "_model_ref", None)
        path = ref if ref and model_id_of(ref) is not None else None
    folder_text = str(Path(path).resolve()) if path is not None else ""
    if folder_text and not Path(folder_text).is_dir():
        raise ConfigurationError(f"{folder_text} is not a model folder")
    new_id = inner.model_id
    try:
        with rag._lock, backend.writing():
            manifest = backend.read_manifest() or rag._manifest
            dimension = int(inner.dimension)
            if manifest.dimension and dimension != manifest.dimension:
                raise EmbedderMismatchError(
                    f"{rag.location} holds {manifest.dimension}-dimensional vectors and "
                    f"{new_id!r} makes {dimension}-dimensional ones: its store cannot take "
                    "them. Build a new knowledge base with that embedder instead"
                )
            manifest.reembedding = new_id
            backend.write_manifest(manifest)
            with backend.reading():
                ids = sorted(backend.store.ids())
            for start in range(0, len(ids), page):
                with backend.reading():
                    chunks = backend.store.get(ids[start : start + page])
                vectors = cache.embed_documents([c.text for c in chunks])
                backend.write(Batch(upsert=chunks, vectors=vectors))
                if progress is not None:
                    progress("reembed", min(start + page, len(ids)), len(ids))
            settings = dict(rag.indexer.settings)
            settings["embedder"] = new_id
            new_hash = settings_hash(settings)
            with backend.reading():
                entries = list(backend.record.entries().values())
            backend.write(
                Batch(
                    put=[replace(e, settings_hash=new_hash) for e in entries if e.state == "done"]
                )
            )
            manifest.embedder_model = new_id
            manifest.dimension = dimension
            manifest.embedder_path = folder_text
            manifest.reembedding = ""
            manifest.query_adapter = ""  # fitted to the old model's vectors
            backend.write_manifest(manifest)
            rag._use_embedder(inner, manifest)
    finally:
        close = getattr(cache, "close", None)
        if callable(close) and cache is not rag.embedder:
            close()
    logger.info("re-embedded %d chunks of %s with %s", len(ids), rag.location, new_id)
    return ReembedReport(
        chunks=len(ids),
        embedded=cache.misses,
        model_id=new_id,
        dimension=manifest.dimension,
        path=folder_text or None,
    )
