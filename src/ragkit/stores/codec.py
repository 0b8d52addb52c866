"""What every store shares: how chunks and vectors are encoded, checked and ranked.

A chunk is kept twice:

* its filterable fields, flat: the built-in ``source``, ``document_id``, ``page`` and
  ``page_end``, plus every scalar (str, int, float, bool) of ``chunk.metadata``;
* the whole chunk as JSON under the reserved key ``_ragkit``, so that it round-trips
  exactly: lists, tuples, nested dicts, dates, ``None`` pages and any unicode.

A metadata key that is a built-in field name (``metadata["source"]``) stays in the
chunk but is not filterable: the filter ``{"source": ...}`` means the built-in field.
Keys starting with ``_ragkit``, ``$`` or ``#``, or ``chroma:`` are not filterable either.

How vectors are checked and ranked lives in :mod:`ragkit.stores._vectors`, re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragkit._files import write_whole
from ragkit.errors import ConfigurationError, StoreError
from ragkit.stores._vectors import (
    as_matrix,
    as_query,
    check_dimension,
    rank,
    top_k_expanding,
)
from ragkit.stores.filters import RESERVED_PREFIX, filterable_key, kind_of
from ragkit.types import Chunk, Scalar

__all__ = [
    "BUILTIN_FIELDS",
    "RESERVED_KEY",
    "as_matrix",
    "as_query",
    "check_dimension",
    "chunk_from_dict",
    "chunk_from_json",
    "chunk_to_dict",
    "chunk_to_json",
    "decode_metadata",
    "encode_metadata",
    "flat_fields",
    "last_wins",
    "rank",
    "top_k_expanding",
    "write_atomically",
]

#: The chunk fields every store can filter on.
BUILTIN_FIELDS = ("source", "document_id", "page", "page_end")
#: Where the JSON of the whole chunk lives in a store's flat metadata.
RESERVED_KEY = RESERVED_PREFIX
_FORMAT = 1
_CHUNK_FIELDS = tuple(f.name for f in dataclasses.fields(Chunk) if f.name != "metadata")


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, where) for v in value]}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, where) for k, v in value.items()}
        return {"$map": [[_encode(k, where), _encode(v, where)] for k, v in value.items()]}
    raise ConfigurationError(
        f"{where}: metadata values of type {type(value).__name__} cannot be stored; "
        "use str, int, float, bool, None, date/datetime, or lists, tuples and dicts of them."
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$tuple":
            return tuple(_decode(v) for v in inner)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$map":
            return {_decode(k): _decode(v) for k, v in inner}
    return {k: _decode(v) for k, v in value.items()}


def chunk_to_dict(chunk: Chunk) -> dict[str, Any]:
    """A JSON-ready dict holding every field of ``chunk``.

    Raises:
        ConfigurationError: a metadata value has a type JSON cannot hold.
    """
    data = {name: getattr(chunk, name) for name in _CHUNK_FIELDS}
    data["metadata"] = _encode(dict(chunk.metadata), f"chunk {chunk.id!r}")
    return {"format": _FORMAT, **data}


def chunk_from_dict(data: Mapping[str, Any]) -> Chunk:
    """The chunk :func:`chunk_to_dict` encoded."""
    known = {name: data[name] for name in _CHUNK_FIELDS if name in data}
    return Chunk(**known, metadata=_decode(data["metadata"]))


def chunk_to_json(chunk: Chunk) -> str:
    """``chunk`` as ASCII JSON (escaped, so even lone surrogates survive)."""
    return json.dumps(chunk_to_dict(chunk), ensure_ascii=True, separators=(",", ":"))


def chunk_from_json(text: str) -> Chunk:
    """The chunk :func:`chunk_to_json` encoded.

    Raises:
        StoreError: ``text`` is not a chunk written by ragkit.
    """
    try:
        return chunk_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"A stored chunk is corrupt ({exc}): {text[:200]!r}") from exc


def _filterable(value: Any) -> Scalar | None:
    if isinstance(value, np.generic):
        value = value.item()
    if kind_of(value) is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no backend can index them
            return None
    return value  # type: ignore[no-any-return]


def flat_fields(chunk: Chunk) -> dict[str, Scalar]:
    """The fields of ``chunk`` that filters can test, as a flat dict of scalars."""
    fields: dict[str, Scalar] = {}
    for key, value in chunk.metadata.items():
        if key in BUILTIN_FIELDS or not filterable_key(key):
            continue
        scalar = _filterable(value)
        if scalar is not None:
            fields[key] = scalar
    for key in BUILTIN_FIELDS:
        scalar = _filterable(getattr(chunk, key))
        if scalar is not None:
            fields[key] = scalar
    return fields


def encode_metadata(chunk: Chunk) -> dict[str, Scalar]:
    """Flat store metadata: the filterable fields plus the chunk's JSON."""
    metadata = flat_fields(chunk)
    metadata[RESERVED_KEY] = chunk_to_json(chunk)
    return metadata


def decode_metadata(metadata: Mapping[str, Any] | None) -> Chunk:
    """The chunk :func:`encode_metadata` stored.

    Raises:
        StoreError: the record was not written by ragkit.
    """
    if not metadata or not isinstance(metadata.get(RESERVED_KEY), str):
        raise StoreError(
            f"A stored record has no {RESERVED_KEY!r} key; it was not written by ragkit."
        )
    return chunk_from_json(metadata[RESERVED_KEY])


def last_wins(chunks: Sequence[Chunk]) -> list[int]:
    """Indices of the chunks to keep when ids repeat in one batch: the last of each id."""
    last = {chunk.id: i for i, chunk in enumerate(chunks)}
    return sorted(last.values())


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, flush it to disk, then swap it into place
    (:func:`ragkit._files.write_whole`).

    Raises:
        StoreError: the file could not be written.
    """
    try:
        write_whole(target, data)
    except OSError as exc:
        raise StoreError(f"Could not write {target}: {exc}") from exc
