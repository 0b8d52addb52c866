"""What the ``ragkit eval`` commands share: a config file read into :class:`~ragkit.RAG`
arguments, a corpus indexed in batches with a progress bar, and the results written as
JSON and printed as a table."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit import config as _config

if TYPE_CHECKING:
    from ragkit.rag import RAG
    from ragkit.types import Document

__all__ = [
    "CHUNKER_KEYS",
    "EMBEDDER_KEYS",
    "index_documents",
    "load_config",
    "rag_options",
    "table",
    "write_results",
]

#: Config keys that set up the default :class:`~ragkit.chunking.RecursiveChunker`.
CHUNKER_KEYS = _config.CHUNKER_KEYS

#: Config keys of an ``embedder`` table: SentenceTransformerEmbedder arguments.
EMBEDDER_KEYS = (
    "model",
    "model_id",
    "device",
    "batch_size",
    "query_prefix",
    "document_prefix",
    "precision",
)

#: Read a settings file (one reader for every command: :func:`ragkit.config.load_mapping`).
load_config = _config.load_mapping


def rag_options(config: Mapping[str, Any], retrieval: str | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`~ragkit.RAG` from a settings file's content.

    The file is a :mod:`ragkit.config` file (``ragkit.toml``); the flat keys older eval
    configs use (``chunk_size``, ``embedder = "name"``, ``retrieval = "dense"``) are part
    of it. ``retrieval``, when given, overrides the config's. The kb comes from ``--kb``.

    Raises:
        ConfigurationError: a key is unknown, or its value is wrong; the message names it.
    """
    settings = dict(config)
    if retrieval is not None:
        settings.pop("retrieval", None)
        settings["retrieval"] = retrieval
    settings.pop("kb", None)
    return _config.RagkitConfig.from_mapping(settings).rag_kwargs()


def index_documents(rag: RAG, documents: Iterable[Document], batch: int = 1000) -> dict[str, Any]:
    """Add the corpus in batches, with a progress bar; return what happened."""
    from tqdm import tqdm

    totals: dict[str, Any] = {
        "documents": 0,
        "added": 0,
        "unchanged": 0,
        "chunks_added": 0,
        "failed": [],
        "seconds": 0.0,
    }
    bar = tqdm(desc="indexing", unit=" docs", file=sys.stderr, disable=None)

    def flush(pending: list[Document]) -> None:
        report = rag.add(pending, progress=lambda _source, _done: bar.update(1))
        totals["documents"] += len(pending)
        totals["added"] += len(report.added) + len(report.updated)
        totals["unchanged"] += len(report.unchanged)
        totals["chunks_added"] += report.chunks_added
        totals["failed"] += [{"source": f.source, "reason": f.reason} for f in report.failed]
        totals["seconds"] += report.seconds
        pending.clear()

    pending: list[Document] = []
    for document in documents:
        pending.append(document)
        if len(pending) >= batch:
            flush(pending)
    flush(pending)
    bar.close()
    return totals


def write_results(output: str, results: dict[str, Any]) -> Path:
    """Write ``results`` as indented JSON to ``output`` (folders made); returns the path."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path


def table(rows: list[tuple[str, str]]) -> str:
    """(name, value) rows as an aligned two-column table: names left, values right."""
    left = max(len(r[0]) for r in rows)
    right = max(len(r[1]) for r in rows)
    return "\n".join(f"  {name:<{left}}  {value:>{right}}" for name, value in rows)
