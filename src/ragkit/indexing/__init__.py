"""Ingest: files and documents in, stored chunks out, with a report."""

from ragkit.indexing.indexer import Indexer, Source
from ragkit.indexing.lock import KnowledgeBaseLock
from ragkit.indexing.manifest import Manifest
from ragkit.indexing.record import IndexRecord

__all__ = ["IndexRecord", "Indexer", "KnowledgeBaseLock", "Manifest", "Source"]
