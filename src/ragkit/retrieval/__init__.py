"""Retrievers: find the chunks relevant to a query (see :class:`ragkit.protocols.Retriever`)."""

from ragkit.retrieval.dense import DenseRetriever
from ragkit.retrieval.fusion import normalized_score_fusion, reciprocal_rank_fusion
from ragkit.retrieval.hybrid import HybridRetriever
from ragkit.retrieval.keyword import BM25Retriever, KeywordIndex
from ragkit.retrieval.rewrite import HyDERetriever, MultiQueryRetriever
from ragkit.retrieval.tokenize import Tokenizer

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "HyDERetriever",
    "HybridRetriever",
    "KeywordIndex",
    "MultiQueryRetriever",
    "Tokenizer",
    "normalized_score_fusion",
    "reciprocal_rank_fusion",
]
