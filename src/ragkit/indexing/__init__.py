"""Ingest: files and documents in, stored chunks out, with a report.

The indexer reads and writes a knowledge base only through its backend
(:mod:`ragkit.backends`): a folder, PostgreSQL or Milvus.
"""

from ragkit.indexing.indexer import Indexer, Progress, Source

__all__ = ["Indexer", "Progress", "Source"]
