"""Interoperation with LangChain, both ways.

LangChain objects into ragkit slots:

* :class:`LangChainLoader`: any LangChain document loader as a ragkit ``Loader``.
* :class:`LangChainEmbedder`: any LangChain ``Embeddings`` as a ragkit ``Embedder``.
* :class:`LangChainRetriever`: any LangChain retriever as a ragkit ``Retriever``.
* :class:`LangChainChatGenerator`: any LangChain chat model as a ragkit generator that
  streams, and still ends with the cited sources.
* :class:`LangChainVectorStore`: any LangChain ``VectorStore`` as a ragkit store (the
  engines LangChain integrates), checked by ``ragkit.testing.VectorStoreContract``.

ragkit objects into LangChain:

* :func:`as_langchain_retriever`: a ragkit retriever (or ``RAG``) as a LangChain
  ``BaseRetriever``, usable in any LCEL chain.
* :func:`as_runnable`: a whole ragkit pipeline (``RAG`` or ``RetrievalQA``) as a LangChain
  ``Runnable``: ``invoke``, ``stream`` and ``batch``, with the citations in the output.

Requires ``pip install "ragkit[langchain]"``; nothing here is imported by ``import ragkit``.
"""

from __future__ import annotations

from ragkit.adapters.langchain.components import (
    LangChainChatGenerator,
    LangChainEmbedder,
    LangChainLoader,
    LangChainRetriever,
    as_langchain_retriever,
)
from ragkit.adapters.langchain.runnable import as_runnable
from ragkit.adapters.langchain.vectorstore import LangChainVectorStore

__all__ = [
    "LangChainChatGenerator",
    "LangChainEmbedder",
    "LangChainLoader",
    "LangChainRetriever",
    "LangChainVectorStore",
    "as_langchain_retriever",
    "as_runnable",
]
