"""ragkit: retrieval-augmented question answering with exact, cited sources.

Quick start::

    from ragkit import RAG

    rag = RAG("./kb")          # local MiniLM, Chroma in ./kb, extractive answers
    rag.add("docs/")
    print(rag.ask("How do I set a timeout?"))

Components live in their packages: ``ragkit.loaders``, ``ragkit.chunking``,
``ragkit.embeddings``, ``ragkit.stores``, ``ragkit.retrieval``, ``ragkit.generation``,
``ragkit.indexing``; their contracts in ``ragkit.protocols``; errors in
``ragkit.errors``; fakes and contract test suites in ``ragkit.testing``.
"""

from ragkit.chain import RetrievalQA
from ragkit.errors import RagkitError
from ragkit.rag import RAG
from ragkit.types import (
    Answer,
    Chunk,
    Citation,
    Document,
    FileIssue,
    Generation,
    Heading,
    IndexReport,
    PageSpan,
    ScoredChunk,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "RAG",
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "FileIssue",
    "Generation",
    "Heading",
    "IndexReport",
    "PageSpan",
    "RagkitError",
    "RetrievalQA",
    "ScoredChunk",
    "Usage",
    "__version__",
]
