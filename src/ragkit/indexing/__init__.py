"""Ingest: files and documents in, stored chunks out, with a report."""

from ragkit.indexing.indexer import Indexer, Source
from ragkit.indexing.manifest import Manifest

__all__ = ["Indexer", "Manifest", "Source"]
