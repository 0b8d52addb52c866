"""A knowledge base in Milvus: chunks, BM25, record, manifest and writers' lease.

``RAG("milvus://host:19530?collection=docs")`` opens :class:`MilvusBackend`; pymilvus
is imported only then (``pip install "ragkit[milvus]"``). The token is read from
``MILVUS_TOKEN``, never from the URL.

Modules: ``backend.py`` (the backend and its write order), ``store.py`` (the chunk
collection as a :class:`~ragkit.protocols.VectorStore`, with BM25 and hybrid search),
``retrievers.py`` (keyword and hybrid retrievers), ``_chunks.py`` (the chunk
collection's schema and rows), ``_filters.py`` (ragkit filters as Milvus expressions),
``_ranking.py`` (the top-k over filtered candidates), ``_record.py`` (record and
manifest rows), ``_lease.py`` (the writers' lease), ``_client.py`` (the connection),
``catalog.py`` (the server's kbs per tenant, API keys and jobs).
"""

from ragkit.backends.milvus.backend import MilvusBackend
from ragkit.backends.milvus.catalog import MilvusCatalog
from ragkit.backends.milvus.store import MilvusStore

__all__ = ["MilvusBackend", "MilvusCatalog", "MilvusStore"]
