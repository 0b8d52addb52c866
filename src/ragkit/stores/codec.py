"""What every store shares: how chunks and vectors are encoded, checked and ranked.

A chunk is kept twice:

* its filterable fields, flat: the built-in ``source``, ``document_id``, ``page`` and
  ``page_end``, plus every scalar (str, int, float, bool) of ``chunk.metadata``;
* the whole chunk as JSON under the reserved key ``_ragkit``, so that it round-trips
  exactly: lists, tuples, nested dicts, dates, ``None`` pages and any unicode.

A metadata key that is a built-in field name (``metadata["source"]``) stays in the
chunk but is not filterable: the filter ``{"source": ...}`` means the built-in field.
Keys starting with ``_ragkit``, ``$`` or ``#``, or ``chroma:`` are not filterable either.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ragkit.errors import ConfigurationError, StoreError
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

T = TypeVar("T")


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


def check_dimension(dimension: object) -> None:
    """Raise :class:`ConfigurationError` unless ``dimension`` is None or a positive int."""
    if dimension is not None and (
        isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0
    ):
        raise ConfigurationError(f"dimension must be a positive int, got {dimension!r}.")


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, flush it to disk, then swap it into place.

    Raises:
        StoreError: the file could not be written.
    """
    tmp = target.with_name(target.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"Could not write {target}: {exc}") from exc


def _normalized(rows: NDArray[np.float32], names: Sequence[str]) -> NDArray[np.float32]:
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad = names[int(np.flatnonzero(~finite)[0])]
        raise ConfigurationError(f"The embedding of {bad} holds NaN or infinite values.")
    wide = rows.astype(np.float64)  # float32 squares overflow for large components
    norms = np.linalg.norm(wide, axis=1)
    if (norms == 0).any():
        bad = names[int(np.flatnonzero(norms == 0)[0])]
        raise ConfigurationError(f"The embedding of {bad} is all zeros; it has no direction.")
    unit: NDArray[np.float32] = (wide / norms[:, None]).astype(np.float32)
    return unit


def _numeric(array: ArrayLike, what: str) -> NDArray[np.float32]:
    try:
        return np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} must be an array of numbers: {exc}") from exc


def as_matrix(
    embeddings: ArrayLike, chunks: Sequence[Chunk], dimension: int | None
) -> NDArray[np.float32]:
    """Check ``embeddings`` against ``chunks`` and return them as unit float32 rows.

    Raises:
        ConfigurationError: wrong shape, wrong dimension, NaN or all-zero rows.
    """
    rows = _numeric(embeddings, "embeddings")
    if rows.ndim != 2:
        raise ConfigurationError(
            f"embeddings must be a 2-D array with one row per chunk, got shape {rows.shape}."
        )
    if rows.shape[0] != len(chunks):
        raise ConfigurationError(
            f"Got {len(chunks)} chunks but {rows.shape[0]} embedding rows; pass one row per chunk."
        )
    if dimension is not None and rows.shape[1] != dimension:
        raise ConfigurationError(
            f"The embeddings have dimension {rows.shape[1]}, but this store holds vectors of "
            f"dimension {dimension}. Use the embedder the store was built with, or a new store."
        )
    return _normalized(rows, [f"chunk {c.id!r}" for c in chunks])


def as_query(embedding: ArrayLike, dimension: int) -> NDArray[np.float32]:
    """Check a query vector and return it as a unit float32 vector of shape ``(d,)``.

    Raises:
        ConfigurationError: wrong shape or dimension, NaN or all zeros.
    """
    vector = _numeric(embedding, "The query embedding")
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]
    if vector.ndim != 1:
        raise ConfigurationError(
            f"The query embedding must be one vector, got shape {vector.shape}."
        )
    if vector.shape[0] != dimension:
        raise ConfigurationError(
            f"The query embedding has dimension {vector.shape[0]}, but this store holds "
            f"vectors of dimension {dimension}. Embed the query with the store's embedder."
        )
    unit: NDArray[np.float32] = _normalized(vector[None, :], ["the query"])[0]
    return unit


def rank(ids: Sequence[str], scores: NDArray[np.floating[Any]], k: int) -> list[int]:
    """Positions of the ``k`` best scores, best first; equal scores in order of id."""
    n = len(ids)
    if k <= 0 or n == 0:
        return []
    if k < n:
        best = np.argpartition(-scores, k - 1)[:k]
        candidates = np.flatnonzero(scores >= scores[best].min())
    else:
        candidates = np.arange(n)
    ordered = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), ids[i]))
    return ordered[:k]


def top_k_expanding(
    fetch: Callable[[int], list[tuple[str, float, T]]], k: int, available: int
) -> list[tuple[str, float, T]]:
    """The ``k`` best ``(id, score, payload)`` hits from an index that returns top-n.

    ``fetch(n)`` returns at most ``n`` hits. One more than ``k`` is asked for, and
    more while the last hit ties with the ``k``-th, so that equal scores at the cut are
    settled by id, as in an exact search.
    """
    n = min(k + 1, available)
    while True:
        hits = sorted(fetch(n), key=lambda h: (-h[1], h[0]))
        if len(hits) <= k or n >= available or hits[-1][1] < hits[k - 1][1]:
            return hits[:k]
        n = min(2 * n, available)
