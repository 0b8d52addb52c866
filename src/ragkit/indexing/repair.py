"""Repairing the record and the store after a crash, and adopting an older kb.

What :meth:`ragkit.indexing.Indexer.repair` and :meth:`~ragkit.indexing.Indexer.adopt`
do, on any :class:`~ragkit.backends.base.KnowledgeBaseBackend`: each repair is one
:class:`~ragkit.backends.base.Batch`, so a backend with transactions applies it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ragkit.backends.base import Batch, RecordEntry

if TYPE_CHECKING:
    from ragkit.backends.base import KnowledgeBaseBackend
    from ragkit.protocols import VectorStore

__all__ = ["adopt_store", "held_ids", "repair_pending"]

logger = logging.getLogger(__name__)

_ID_BATCH = 1000


def held_ids(store: VectorStore, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the store holds, asked in batches."""
    wanted = sorted(ids)
    held: set[str] = set()
    for i in range(0, len(wanted), _ID_BATCH):
        held.update(c.id for c in store.get(wanted[i : i + _ID_BATCH]))
    return held


def repair_pending(backend: KnowledgeBaseBackend, pending: list[RecordEntry]) -> None:
    """Roll each pending entry forward (all its new chunks are in the store) or back."""
    store = backend.store
    done: list[str] = []
    removed: list[str] = []
    fixes: list[RecordEntry] = []
    doomed: set[str] = set()
    kept: set[str] = set()
    for entry in pending:
        wanted, previous = set(entry.chunk_ids), set(entry.previous_ids)
        # A streamed source has written chunks that no entry lists yet.
        in_store = set(store.ids({"source": entry.source}))
        held = held_ids(store, wanted | previous) | in_store
        if wanted <= held:
            final, rolled = wanted, "forward"
        else:
            final, rolled = previous & held, "back"
        doomed |= (wanted | previous | in_store) - final
        kept |= final
        if rolled == "forward" and not final:
            removed.append(entry.source)
        elif rolled == "forward":
            done.append(entry.source)
        elif final:
            fixes.append(RecordEntry(entry.source, "", tuple(sorted(final)), entry.settings_hash))
        else:
            removed.append(entry.source)
        logger.warning("repaired %s after an interrupted write (rolled %s)", entry.source, rolled)
    backend.write(
        Batch(
            delete=sorted(doomed - kept),
            reindex=sorted(kept),
            put=fixes,
            done=done,
            removed=removed,
        )
    )


def adopt_store(backend: KnowledgeBaseBackend) -> int:
    """Record exactly what the store holds, per source; returns sources changed."""
    store, record = backend.store, backend.record
    by_source: dict[str, set[str]] = {}
    ids = store.ids()
    for i in range(0, len(ids), _ID_BATCH):
        for chunk in store.get(ids[i : i + _ID_BATCH]):
            by_source.setdefault(chunk.source, set()).add(chunk.id)
    entries = record.entries()
    fixed = [
        RecordEntry(
            source,
            "",
            tuple(sorted(chunk_ids)),
            entries[source].settings_hash if source in entries else "",
        )
        for source, chunk_ids in by_source.items()
        if source not in entries or set(entries[source].chunk_ids) != chunk_ids
    ]
    gone = [s for s in entries if s not in by_source]
    if fixed or gone:
        backend.write(Batch(put=fixed, removed=gone))
        logger.info(
            "index record re-synced with the store: %d sources recorded, %d dropped",
            len(fixed),
            len(gone),
        )
    return len(fixed) + len(gone)
