"""What the ``ragkit eval`` commands share: a config file read into :class:`~ragkit.RAG`
arguments, a corpus indexed in batches with a progress bar, and the results written as
JSON and printed as a table."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
CHUNKER_KEYS = ("chunk_size", "chunk_overlap", "length", "encoding", "markdown", "keep_separator")

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

# RAG arguments that take components, not plain values (``path`` comes from --kb).
_NOT_CONFIGURABLE = ("path", "chunker", "loader", "retriever", "generator")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` file of settings into a dict.

    Raises:
        ConfigurationError: the file cannot be read or parsed, or is not a table.
    """
    from ragkit.errors import ConfigurationError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigurationError(f"config file {path} must end in .json or .toml")
    parse: Any = json.loads
    if suffix == ".toml":
        try:
            parse = importlib.import_module("tomllib").loads
        except ModuleNotFoundError:  # Python 3.10
            try:
                parse = importlib.import_module("tomli").loads
            except ModuleNotFoundError as exc:
                raise ConfigurationError(
                    f"{path}: reading TOML needs Python 3.11+ or `pip install tomli`; "
                    "or write the config as JSON"
                ) from exc
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"config file {path} cannot be read ({exc.strerror})") from exc
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        raise ConfigurationError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold an object of settings")
    return data


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def rag_options(config: Mapping[str, Any], retrieval: str | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`~ragkit.RAG` from plain settings.

    ``chunk_size``, ``chunk_overlap`` (and the other :data:`CHUNKER_KEYS`) build a
    :class:`~ragkit.chunking.RecursiveChunker`; ``embedder`` (a model name, or a table
    of :data:`EMBEDDER_KEYS`) a :class:`~ragkit.embeddings.SentenceTransformerEmbedder`;
    every other key must be a ``RAG`` argument that takes a plain value (``store``,
    ``retrieval``, ``cache``, ...). ``retrieval``, when given, overrides the config's.

    Raises:
        ConfigurationError: a key is unknown, or its value is not a plain value.
    """
    from ragkit.errors import ConfigurationError
    from ragkit.rag import RAG

    settings = dict(config)
    if retrieval is not None:
        settings["retrieval"] = retrieval
    accepted = set(inspect.signature(RAG).parameters) - set(_NOT_CONFIGURABLE) - {"embedder"}
    options: dict[str, Any] = {}

    chunking = {key: settings.pop(key) for key in CHUNKER_KEYS if key in settings}
    if chunking:
        from ragkit.chunking import RecursiveChunker

        options["chunker"] = RecursiveChunker(**chunking)

    embedder = settings.pop("embedder", None)
    if embedder is not None:
        if isinstance(embedder, str):
            embedder = {"model": embedder}
        if not isinstance(embedder, dict) or set(embedder) - set(EMBEDDER_KEYS):
            raise ConfigurationError(
                f"embedder must be a model name or a table with keys among "
                f"{', '.join(EMBEDDER_KEYS)}; got {embedder!r}"
            )
        from ragkit.embeddings import SentenceTransformerEmbedder

        options["embedder"] = SentenceTransformerEmbedder(**embedder)

    for key, value in settings.items():
        if key not in accepted:
            hint = (
                "this version of ragkit's RAG has no such argument"
                if key not in _NOT_CONFIGURABLE
                else "it takes a component, which a config file cannot hold"
            )
            raise ConfigurationError(
                f"config setting {key!r} cannot be used: {hint}; settings: "
                f"{', '.join(sorted(accepted | set(CHUNKER_KEYS) | {'embedder'}))}"
            )
        if not _plain(value):
            raise ConfigurationError(f"config setting {key!r} must be a plain value, got {value!r}")
        options[key] = value
    return options


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
