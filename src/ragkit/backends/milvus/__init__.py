"""A knowledge base in Milvus: chunks, BM25, record, manifest and writers' lease.

``RAG("milvus://host:19530?collection=docs")`` opens :class:`MilvusBackend`; pymilvus
is imported only then (``pip install "ragkit[milvus]"``).
"""

from ragkit.backends.milvus.store import MilvusStore

__all__ = ["MilvusStore"]
