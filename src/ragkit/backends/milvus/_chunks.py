"""The chunk collection's layout: its schema, how a chunk becomes a row and back.

One row per chunk:

* ``id`` (VARCHAR primary key): the chunk id;
* ``vector`` (FLOAT_VECTOR, HNSW index, COSINE): the unit vector;
* ``text`` (VARCHAR with the analyzer on, :data:`ANALYZER`): ragkit's search terms of
  the chunk text with its title and heading path (:func:`bm25_text`), which Milvus's
  built-in BM25 function turns into ``sparse`` (SPARSE_FLOAT_VECTOR, BM25 index);
* ``meta`` and ``flags`` (JSON): the filterable fields, strings and numbers in ``meta``,
  booleans in ``flags`` (see :mod:`ragkit.backends.milvus._filters` for why);
* ``chunk`` (VARCHAR): the whole chunk as ragkit's ASCII JSON
  (:func:`ragkit.stores.codec.chunk_to_json`), so ``get`` returns an equal chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.backends.milvus._client import Connection, pymilvus
from ragkit.errors import ConfigurationError
from ragkit.retrieval.scope import with_context
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import chunk_to_json, flat_fields
from ragkit.types import Chunk

__all__ = [
    "FIELDS",
    "MAX_ID",
    "MAX_TEXT",
    "bm25_text",
    "create",
    "create_collection",
    "dimension_of",
    "rows",
]

#: Milvus's largest VARCHAR, in bytes.
MAX_TEXT = 65535
#: Longest chunk id, in bytes.
MAX_ID = 512
FIELDS = ("id", "vector", "text", "sparse", "meta", "flags", "chunk")
_HNSW = {"M": 16, "efConstruction": 200}
#: Metadata keys whose values BM25 reads with the text (ragkit's ``KeywordIndex`` default).
CONTEXT = ("title", "heading_path")
#: Milvus's BM25 analyzer. The ``text`` field holds ragkit's own terms of the chunk
#: (:func:`bm25_text`: case-folded, stopwords dropped, stemmed by ragkit's
#: :class:`~ragkit.retrieval.tokenize.Tokenizer`) and queries are sent the same way, so
#: the analyzer only splits on the spaces between them: Milvus scores the same terms as
#: ragkit's BM25, on Milvus Lite (which has no stemmer) as on a server.
ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
_TOKENIZER = Tokenizer()


def bm25_text(text: str) -> str:
    """``text`` as the space-separated terms Milvus's BM25 indexes and searches."""
    return " ".join(_TOKENIZER.tokenize(text))


def create(connection: Connection, name: str, dimension: int) -> None:
    """Create the chunk collection ``name`` for vectors of ``dimension``, loaded."""
    module = pymilvus()
    data_type = module.DataType
    schema = connection.client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", data_type.VARCHAR, is_primary=True, max_length=MAX_ID)
    schema.add_field("vector", data_type.FLOAT_VECTOR, dim=dimension)
    schema.add_field(
        "text",
        data_type.VARCHAR,
        max_length=MAX_TEXT,
        enable_analyzer=True,
        analyzer_params=ANALYZER,
    )
    schema.add_field("sparse", data_type.SPARSE_FLOAT_VECTOR)
    schema.add_field("meta", data_type.JSON)
    schema.add_field("flags", data_type.JSON)
    schema.add_field("chunk", data_type.VARCHAR, max_length=MAX_TEXT)
    schema.add_function(
        module.Function(
            name="text_bm25",
            function_type=module.FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    index = connection.client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="COSINE", params=_HNSW)
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    create_collection(connection, name, schema, index)


def create_collection(connection: Connection, name: str, schema: Any, index: Any) -> None:
    """Create ``name`` with strong consistency, index it and load it.

    The index is requested without waiting for it (``sync=False``): pymilvus would poll
    every half second for an index over an empty collection.
    """
    what = f"creating the collection {name!r}"
    connection.call(what, "create_collection", name, schema=schema, consistency_level="Strong")
    connection.call(what, "create_index", name, index, sync=False)
    connection.call(what, "load_collection", name)


def dimension_of(connection: Connection, name: str) -> int:
    """The vector dimension of the existing chunk collection ``name``, after checking
    that ragkit made it; loads it for search.

    Raises:
        ConfigurationError: the collection has another layout.
    """
    info = connection.call(f"describing the collection {name!r}", "describe_collection", name)
    fields = {f["name"]: f for f in info.get("fields", [])}
    if not set(FIELDS) <= set(fields):
        raise ConfigurationError(
            f"The Milvus collection {name!r} at {connection.location} was not made by "
            f"ragkit (its fields are {', '.join(sorted(fields))}); use another collection "
            "name in the URL (?collection=...)"
        )
    connection.call(f"loading the collection {name!r}", "load_collection", name)
    return int(fields["vector"]["params"]["dim"])


def _fits(text: str, what: str) -> str:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT:
        raise ConfigurationError(
            f"{what} takes {size} bytes in Milvus, above its {MAX_TEXT}-byte limit for a "
            "text field; split the document into smaller chunks (a smaller chunk_size)"
        )
    return text


def rows(chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> list[dict[str, Any]]:
    """The rows of ``chunks`` (checked, so that a bad chunk fails the batch before any
    write)."""
    out = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        try:
            size = len(chunk.id.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConfigurationError(
                f"The chunk id {chunk.id!r} is not valid unicode text; Milvus keys are UTF-8"
            ) from None
        if not chunk.id or size > MAX_ID:
            raise ConfigurationError(
                f"The chunk id {chunk.id[:80]!r} must be 1 to {MAX_ID} bytes for Milvus"
            )
        fields = flat_fields(chunk)
        out.append(
            {
                "id": chunk.id,
                "vector": np.asarray(vector, dtype=np.float32).tolist(),
                # The JSON keeps the exact text; BM25 gets ragkit's terms of it with the
                # title and heading path (as ragkit's own BM25 does), no lone surrogates.
                "text": bm25_text(with_context(chunk.text, chunk.metadata, CONTEXT))
                .encode("utf-8", "replace")
                .decode("utf-8"),
                "meta": {k: v for k, v in fields.items() if not isinstance(v, bool)},
                "flags": {k: v for k, v in fields.items() if isinstance(v, bool)},
                "chunk": _fits(chunk_to_json(chunk), f"The chunk {chunk.id!r}"),
            }
        )
    return out
