"""The work of ingest jobs: uploaded files and texts into a kb, replace, delete, sync.

An uploaded file is named by the client (``handbook.pdf``): that name, not the path
where it waited on the server, is its source in the kb, in citations and in the
documents list. A file the loader turns into several documents (a CSV, a JSON Lines
file) is kept as ``name#1``, ``name#2``... so each has an entry of its own; uploading
the name again replaces all of them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import LoaderError
from ragkit.server.jobs import JobContext, JobOutcome
from ragkit.types import Document, FileIssue, IndexReport, document_id

if TYPE_CHECKING:
    from ragkit.rag import RAG

__all__ = [
    "SpooledFile",
    "TextItem",
    "delete_sources",
    "family",
    "find_source",
    "index_upload",
    "run_sync",
    "safe_name",
]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SpooledFile:
    """An uploaded file waiting for its job: its name (the source) and where it lies."""

    name: str
    path: Path


@dataclass(frozen=True)
class TextItem:
    """A text document sent as JSON."""

    source: str
    text: str
    metadata: Mapping[str, Any]


def safe_name(filename: str | None) -> str:
    """The source name of an uploaded file: its base name without control characters.

    Raises:
        ValueError: the name is empty (or only a path).
    """
    name = _UNSAFE.sub("", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or name in (".", ".."):
        raise ValueError(f"an uploaded file needs a name, got {filename!r}")
    return name[:255]


def family(name: str, sources: Sequence[str]) -> list[str]:
    """``name`` and its ``name#n`` parts among ``sources``."""
    prefix = name + "#"
    return [
        s for s in sources if s == name or (s.startswith(prefix) and s[len(prefix) :].isdigit())
    ]


def find_source(rag: RAG, doc_id: str) -> str | None:
    """The source whose document id is ``doc_id`` in the kb, if any."""
    with rag.backend.reading():
        sources = rag.record.sources()
    return next((s for s in sources if document_id(s) == doc_id), None)


def _named(docs: list[Document], name: str, metadata: Mapping[str, Any]) -> list[Document]:
    several = len(docs) > 1
    names = [f"{name}#{i}" if several else name for i in range(1, len(docs) + 1)]
    return [
        replace(d, source=n, id=document_id(n), metadata={**d.metadata, **metadata})
        for d, n in zip(docs, names, strict=True)
    ]


def index_upload(
    rag: RAG,
    ctx: JobContext,
    *,
    files: Sequence[SpooledFile],
    texts: Sequence[TextItem],
    metadata: Mapping[str, Any],
    spool: Path | None,
) -> JobOutcome:
    """Load the files, name their documents, index them with the texts; parts of an
    earlier upload of the same name that the new content no longer has are removed."""
    try:
        documents: list[Document] = []
        errors: list[FileIssue] = []
        total = len(files) + len(texts)
        loader = rag.indexer.loader
        for i, item in enumerate(files):
            ctx.progress(i, total)
            try:
                docs = loader.load(item.path)
            except LoaderError as exc:
                errors.append(FileIssue(item.name, exc.reason))
                continue
            except Exception as exc:  # a loader bug must not lose the other files
                errors.append(FileIssue(item.name, f"could not be read ({type(exc).__name__})"))
                continue
            if not docs:
                errors.append(FileIssue(item.name, "no text could be extracted"))
                continue
            documents += _named(docs, item.name, metadata)
        documents += [
            Document(text=t.text, source=t.source, metadata={**metadata, **t.metadata})
            for t in texts
        ]
        ctx.check()
        names = [f.name for f in files] + [t.source for t in texts]
        offset = len(files)

        def progress(source: str, done: int) -> None:
            ctx.progress(min(offset + done, total), total)

        report = rag.add(documents, progress=progress) if documents else IndexReport()
        kept = {d.source for d in documents}
        with rag.backend.reading():
            recorded = rag.record.sources()
        stale = [s for n in names for s in family(n, recorded) if s not in kept]
        if stale:
            for source in stale:
                rag.delete(source)
            report = replace(report, deleted=tuple(report.deleted) + tuple(stale))
        return JobOutcome(report=report, errors=errors)
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def delete_sources(rag: RAG, ctx: JobContext, name: str) -> JobOutcome:
    """Remove the document ``name`` (and its ``name#n`` parts)."""
    with rag.backend.reading():
        sources = family(name, rag.record.sources())
    removed = []
    chunks = 0
    for i, source in enumerate(sources):
        ctx.progress(i, len(sources))
        chunks += rag.delete(source)
        removed.append(source)
    report = IndexReport(deleted=tuple(removed), chunks_deleted=chunks)
    return JobOutcome(report=report)


def run_sync(
    rag: RAG, ctx: JobContext, path: Path, include: Sequence[str], exclude: Sequence[str]
) -> JobOutcome:
    """``rag.sync(path)``, reporting progress per file."""

    def progress(source: str, done: int) -> None:
        ctx.progress(done)

    report = rag.sync(path, include=include, exclude=exclude, progress=progress)
    return JobOutcome(report=report)
