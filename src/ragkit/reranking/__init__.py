"""Rerankers: reorder retrieved chunks (see :class:`ragkit.protocols.Reranker`).

* :class:`CrossEncoderReranker` — a sentence-transformers cross-encoder scores each
  (question, chunk) pair; the most accurate, and the costliest.
* :class:`MMRReranker` — maximal marginal relevance: relevant chunks that do not repeat
  each other.
* :class:`BM25Reranker` — no model: mixes the retriever's score with BM25 computed over
  the candidates; helps dense retrieval find exact terms.
"""

from ragkit.reranking.bm25 import BM25Reranker
from ragkit.reranking.cross_encoder import CrossEncoderReranker
from ragkit.reranking.mmr import MMRReranker
from ragkit.reranking.query_likelihood import QueryLikelihoodReranker

__all__ = ["BM25Reranker", "CrossEncoderReranker", "MMRReranker", "QueryLikelihoodReranker"]
