"""Retrievers: find the chunks relevant to a query (see :class:`ragkit.protocols.Retriever`)."""

from ragkit.retrieval.dense import DenseRetriever

__all__ = ["DenseRetriever"]
