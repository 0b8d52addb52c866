"""The record of indexed sources and the manifest, in the collection ``<collection>_record``.

Milvus only keeps collections with a vector field, so each row carries a constant
two-dimensional ``vector`` that nothing searches. Rows are told apart by ``kind``:

* ``source``: one record entry, as JSON in ``data``. An entry too long for one
  VARCHAR (a file of thousands of chunks) is split over several rows (``part`` of
  ``parts``). Every write of an entry gets a new ``version`` and the old version's rows
  are deleted after the new ones are in, so a crash in between leaves the old entry or
  the new one whole: a reader takes the newest complete version (``seq``).
* ``manifest``: the manifest's JSON, one row (one upsert: whole or not at all).
* ``lease``: the writers' lease (:mod:`ragkit.backends.milvus._lease`).

Every read is strongly consistent: it sees every write before it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ragkit.backends.base import Change, RecordEntry
from ragkit.backends.milvus._chunks import MAX_TEXT, create_collection
from ragkit.backends.milvus._client import Connection, batched, pymilvus
from ragkit.backends.milvus._filters import quote
from ragkit.errors import ConfigurationError, StoreError

__all__ = ["CATALOG_PREFIX", "RECORD_FIELDS", "MilvusRecord", "record_collection", "row"]

_FIELDS = ("key", "kind", "src", "version", "part", "parts", "seq", "data", "vector")
#: The fields every record collection has (how a catalog tells a kb's record).
RECORD_FIELDS = _FIELDS
#: Collections of the server's catalog (``catalog.py``) start with this: no default-tenant
#: kb may take such a name.
CATALOG_PREFIX = "ragkit_catalog_"
_PIECE = 60_000  # characters of ASCII JSON per row, below Milvus's VARCHAR limit
_DUMMY = [1.0, 0.0]
_READ = ["kind", "src", "version", "part", "parts", "seq", "data"]


def record_collection(connection: Connection, name: str) -> None:
    """Create the record collection ``name`` if needed, and check it is ragkit's."""
    if connection.has_collection(name):
        info = connection.call(f"describing {name!r}", "describe_collection", name)
        fields = {f["name"] for f in info.get("fields", [])}
        if not set(_FIELDS) <= fields:
            raise ConfigurationError(
                f"The Milvus collection {name!r} at {connection.location} is not a ragkit "
                "record; use another collection name in the URL (?collection=...)"
            )
        connection.call(f"loading {name!r}", "load_collection", name)
        return
    data_type = pymilvus().DataType
    schema = connection.client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", data_type.VARCHAR, is_primary=True, max_length=128)
    schema.add_field("kind", data_type.VARCHAR, max_length=16)
    schema.add_field("src", data_type.VARCHAR, max_length=64)
    schema.add_field("version", data_type.VARCHAR, max_length=32)
    schema.add_field("part", data_type.INT64)
    schema.add_field("parts", data_type.INT64)
    schema.add_field("seq", data_type.INT64)
    schema.add_field("data", data_type.VARCHAR, max_length=MAX_TEXT)
    schema.add_field("vector", data_type.FLOAT_VECTOR, dim=len(_DUMMY))
    index = connection.client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    create_collection(connection, name, schema, index)


def row(key: str, kind: str, data: str, **extra: Any) -> dict[str, Any]:
    """A record collection row (``extra``: src, version, part, parts)."""
    fields = {"src": "", "version": "", "part": 0, "parts": 1, **extra}
    return {
        "key": key,
        "kind": kind,
        "seq": time.time_ns(),
        "data": data,
        "vector": _DUMMY,
        **fields,
    }


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def _to_json(entry: RecordEntry) -> str:
    data = {
        "source": entry.source,
        "content_hash": entry.content_hash,
        "chunk_ids": sorted(entry.chunk_ids),
        "settings_hash": entry.settings_hash,
        "state": entry.state,
        "previous_ids": sorted(entry.previous_ids),
    }
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _from_json(text: str) -> RecordEntry:
    data = json.loads(text)
    return RecordEntry(
        source=data["source"],
        content_hash=data["content_hash"],
        chunk_ids=tuple(data["chunk_ids"]),
        settings_hash=data["settings_hash"],
        state=data["state"],
        previous_ids=tuple(data["previous_ids"]),
    )


class MilvusRecord:
    """What is indexed, per source, in the record collection (the ``Record`` protocol).

    Writes come from :meth:`MilvusBackend.write` only: :meth:`begin`, :meth:`put`,
    :meth:`finish`.
    """

    def __init__(self, connection: Connection, name: str) -> None:
        self._conn = connection
        self.name = name

    # -- reading ---------------------------------------------------------------------

    def _read(self, expr: str) -> dict[str, RecordEntry]:
        rows = self._conn.query_all("reading the record", self.name, expr, _READ)
        versions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            versions[(r["src"], r["version"])].append(r)
        newest: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        for (src, _), parts in versions.items():
            if len(parts) != parts[0]["parts"]:
                continue  # a write cut short: its older version is still whole
            seq = max(p["seq"] for p in parts)
            if src not in newest or seq > newest[src][0]:
                newest[src] = (seq, parts)
        entries = {}
        for _, parts in newest.values():
            text = "".join(p["data"] for p in sorted(parts, key=lambda p: p["part"]))
            try:
                entry = _from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(
                    f"A record entry in the Milvus collection {self.name!r} is corrupt "
                    f"({exc}); delete the collection to rebuild the record"
                ) from exc
            entries[entry.source] = entry
        return dict(sorted(entries.items()))

    def get(self, source: str) -> RecordEntry | None:
        expr = f'kind == "source" and src == {quote(_digest(source))}'
        return self._read(expr).get(source)

    def entries(self) -> dict[str, RecordEntry]:
        return self._read('kind == "source"')

    def sources(self) -> list[str]:
        return list(self.entries())

    def pending(self) -> list[RecordEntry]:
        return [e for e in self.entries().values() if e.state == "pending"]

    def chunk_total(self) -> int:
        return sum(len(e.chunk_ids) for e in self.entries().values())

    def count(self) -> int:
        return len(self.entries())

    # -- writing ---------------------------------------------------------------------

    def begin(self, changes: Sequence[Change]) -> None:
        """Mark ``changes`` pending, before the chunks are written."""
        self.put(
            RecordEntry(
                c.source,
                c.content_hash,
                tuple(c.chunk_ids),
                c.settings_hash,
                "pending",
                tuple(c.previous_ids),
            )
            for c in changes
        )

    def put(self, entries: Iterable[RecordEntry]) -> None:
        """Write entries as they are: new versions first, then the old ones deleted."""
        rows: list[dict[str, Any]] = []
        keep: dict[str, str] = {}
        for entry in entries:
            src, version = _digest(entry.source), uuid.uuid4().hex
            text = _to_json(entry)
            pieces = [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)]
            keep[src] = version
            rows += [
                row(
                    f"s:{src}:{version}:{i}",
                    "source",
                    piece,
                    src=src,
                    version=version,
                    part=i,
                    parts=len(pieces),
                )
                for i, piece in enumerate(pieces)
            ]
        for batch in batched(rows, 500):
            self._conn.call("writing the record", "upsert", self.name, batch)
        stale = [f"(src == {quote(s)} and version != {quote(v)})" for s, v in keep.items()]
        for tests in batched(stale, 200):
            expr = 'kind == "source" and (' + " or ".join(tests) + ")"
            self._conn.call("writing the record", "delete", self.name, filter=expr)

    def finish(self, done: Sequence[str] = (), removed: Sequence[str] = ()) -> None:
        """Mark pending sources done, then drop removed ones."""
        for part in batched([quote(_digest(s)) for s in done], 500):
            found = self._read(f'kind == "source" and src in [{", ".join(part)}]')
            self.put(
                RecordEntry(e.source, e.content_hash, e.chunk_ids, e.settings_hash)
                for e in found.values()
            )
        for part in batched([quote(_digest(s)) for s in removed], 500):
            expr = f'kind == "source" and src in [{", ".join(part)}]'
            self._conn.call("writing the record", "delete", self.name, filter=expr)
