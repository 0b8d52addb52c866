"""Retrievers: find the chunks relevant to a query (see :class:`ragkit.protocols.Retriever`)."""

from ragkit.retrieval.dense import DenseRetriever
from ragkit.retrieval.fusion import reciprocal_rank_fusion

__all__ = ["DenseRetriever", "reciprocal_rank_fusion"]
