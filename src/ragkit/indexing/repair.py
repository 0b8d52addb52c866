"""Repairing the record and the store after a crash, and adopting an older kb.

These are the bodies of :meth:`ragkit.indexing.Indexer.repair` and
:meth:`~ragkit.indexing.Indexer.adopt`; see :mod:`ragkit.indexing.record` for the
write protocol they rely on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ragkit.indexing.record import RecordEntry

if TYPE_CHECKING:
    from ragkit.indexing.indexer import Indexer
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


def repair_pending(indexer: Indexer, pending: list[RecordEntry]) -> None:
    """Roll each pending entry forward (all its new chunks are in the store) or back."""
    store, keyword, record = indexer.store, indexer.keyword, indexer.record
    done: list[str] = []
    removed: list[str] = []
    fixes: list[RecordEntry] = []
    with indexer.write_guard():
        for entry in pending:
            wanted, previous = set(entry.chunk_ids), set(entry.previous_ids)
            # A streamed source has written chunks that no entry lists yet.
            in_store = set(store.ids({"source": entry.source}))
            held = held_ids(store, wanted | previous) | in_store
            if wanted <= held:
                final, rolled = wanted, "forward"
            else:
                final, rolled = previous & held, "back"
            extra = sorted((wanted | previous | in_store) - final)
            if extra:
                store.delete(extra)
                if keyword is not None:
                    keyword.delete(extra)
            if keyword is not None and final:
                ordered = sorted(final)
                for i in range(0, len(ordered), _ID_BATCH):
                    keyword.upsert(store.get(ordered[i : i + _ID_BATCH]))
            if rolled == "forward" and not final:
                removed.append(entry.source)
            elif rolled == "forward":
                done.append(entry.source)
            elif final:
                fixes.append(
                    RecordEntry(entry.source, "", tuple(sorted(final)), entry.settings_hash)
                )
            else:
                removed.append(entry.source)
            logger.warning(
                "repaired %s after an interrupted write (rolled %s)", entry.source, rolled
            )
        record.put(fixes)
        record.finish(done=done, removed=removed)


def adopt_store(indexer: Indexer) -> int:
    """Record exactly what the store holds, per source; returns sources changed."""
    store, record = indexer.store, indexer.record
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
    with indexer.write_guard():
        record.put(fixed)
        record.remove(gone)
    if fixed or gone:
        logger.info(
            "index record re-synced with the store: %d sources recorded, %d dropped",
            len(fixed),
            len(gone),
        )
    return len(fixed) + len(gone)
