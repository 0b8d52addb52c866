"""What an ``add`` has to index: sources walked, hashed, and loaded when they changed.

The reading side of :class:`~ragkit.indexing.Indexer`: folders are walked, each file's
bytes hashed and compared with the record, and only a new or changed file is loaded
(or opened for streaming, when the loader streams it). Failures are tallied, never
raised: one broken file must not stop a folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.errors import LoaderError
from ragkit.indexing.streamed import Windows
from ragkit.protocols import Loader, StreamingLoader
from ragkit.types import Document, FileIssue

if TYPE_CHECKING:
    from ragkit.backends.base import Record
    from ragkit.indexing._batch import Tally

#: Something ``add`` accepts: a file, a folder, or a ready document.
Source = str | Path | Document

__all__ = ["Source", "candidates", "content_hash", "document_hash"]

logger = logging.getLogger(__name__)

_READ_BLOCK = 1 << 20


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB blocks (memory stays flat)."""
    h = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_READ_BLOCK):
            h.update(block)
    return "sha256:" + h.hexdigest()


def document_hash(documents: Sequence[Document]) -> str:
    """sha256 of documents' text, metadata and layout (what chunking depends on)."""
    h = hashlib.sha256()
    for doc in documents:
        h.update(doc.text.encode("utf-8", "surrogatepass"))
        layout = {
            "id": doc.id,
            "metadata": doc.metadata,
            "pages": [(p.number, p.start, p.end, p.label) for p in doc.pages],
            "headings": [(x.start, x.level, x.title) for x in doc.headings],
        }
        h.update(json.dumps(layout, sort_keys=True, default=str).encode("utf-8", "replace"))
    return "sha256:" + h.hexdigest()


def candidates(
    loader: Loader,
    record: Record,
    sources: Iterable[Source],
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    tally: Tally,
    settings: str,
) -> Iterator[tuple[str, str, list[Document] | None, Windows | None]]:
    """(source, content hash, documents, windows): documents is None when unchanged,
    windows is not None when the loader streams the file (documents are then [])."""
    from ragkit.loaders.auto import unreadable_reason, walk

    known = record.entries()  # one query, not one per file
    for item in sources:
        if isinstance(item, Document):
            tally.seen.add(item.source)
            yield item.source, document_hash([item]), [item], None
            continue
        root = Path(item)
        if not root.exists():
            tally.failed.append(FileIssue(str(item), "no such file or folder; check the path"))
            continue

        def unlisted(folder: Path, exc: OSError) -> None:
            tally.unlisted.append(str(folder))
            tally.failed.append(FileIssue(str(folder), unreadable_reason(folder, exc)))

        for path in walk(root, include=include, exclude=exclude, on_error=unlisted):
            source = str(path)
            tally.seen.add(source)
            try:
                digest = content_hash(path)
            except OSError as exc:
                tally.failed.append(FileIssue(source, unreadable_reason(path, exc)))
                continue
            entry = known.get(source)
            if (
                entry is not None
                and entry.state == "done"
                and entry.content_hash == digest
                and entry.settings_hash == settings
            ):
                yield source, digest, None, None
                continue
            try:
                windows = loader.windows(path) if isinstance(loader, StreamingLoader) else None
                docs = loader.load(path) if windows is None else []
            except LoaderError as exc:
                tally.failed.append(FileIssue(source, exc.reason))
                continue
            except Exception as exc:  # a broken file must never stop the folder
                logger.debug("loading %s failed", path, exc_info=True)
                tally.failed.append(
                    FileIssue(source, f"could not be read ({type(exc).__name__}: {exc})")
                )
                continue
            yield source, digest, docs, windows
