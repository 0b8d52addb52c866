"""LangChain loaders, embeddings, retrievers and chat models in ragkit slots, and a ragkit
retriever as a LangChain retriever. See :mod:`ragkit.adapters.langchain`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit._deps import require
from ragkit.errors import GenerationError, LoaderError
from ragkit.generation.prompt import DEFAULT_SYSTEM, DEFAULT_USER_TEMPLATE, Prompt, PromptBuilder
from ragkit.protocols import Filters, Retriever
from ragkit.types import (
    Chunk,
    Document,
    Generation,
    PageSpan,
    ScoredChunk,
    Usage,
    chunk_id,
    document_id,
)

__all__ = [
    "LangChainChatGenerator",
    "LangChainEmbedder",
    "LangChainLoader",
    "LangChainRetriever",
    "as_langchain_retriever",
]


def _langchain_core() -> Any:
    return require(
        "langchain_core.documents",
        extra="langchain",
        purpose="LangChain interoperation",
        package="langchain-core",
    )


class LangChainLoader:
    """Use a LangChain document loader for files ragkit's loaders do not cover.

    Pages that LangChain returns as separate documents (``metadata["page"]``, 0-based,
    as PyPDFLoader does) are joined into one ragkit document with page spans, so chunks
    keep exact offsets and page numbers.

    Example:
        >>> from langchain_community.document_loaders import PyPDFLoader  # doctest: +SKIP
        >>> loader = LangChainLoader(PyPDFLoader)  # doctest: +SKIP
        >>> RAG("./kb", loader=loader).add("paper.pdf")  # doctest: +SKIP

    Args:
        factory: called with the file path (as ``str``), returns a LangChain loader.
    """

    def __init__(self, factory: Callable[[str], Any]) -> None:
        self.factory = factory

    def load(self, path: Path) -> list[Document]:
        source = str(path)
        try:
            lc_docs = list(self.factory(source).load())
        except Exception as exc:
            raise LoaderError(source, f"the LangChain loader failed: {exc}") from exc
        if not lc_docs:
            return []
        pages = [d.metadata.get("page") for d in lc_docs]
        if all(isinstance(p, int) for p in pages) and len(set(pages)) == len(pages):
            return [_join_pages(source, lc_docs)]
        return [
            Document(
                text=d.page_content,
                source=source,
                id=document_id(source, f"part={i}") if len(lc_docs) > 1 else "",
                metadata={**d.metadata, "loader": "langchain"},
            )
            for i, d in enumerate(lc_docs)
        ]


def _join_pages(source: str, lc_docs: Sequence[Any]) -> Document:
    parts: list[str] = []
    spans: list[PageSpan] = []
    offset = 0
    for d in sorted(lc_docs, key=lambda d: d.metadata["page"]):
        if parts:
            parts.append("\n\n")
            offset += 2
        text = d.page_content
        label = d.metadata.get("page_label")
        spans.append(
            PageSpan(
                d.metadata["page"] + 1, offset, offset + len(text), str(label) if label else None
            )
        )
        parts.append(text)
        offset += len(text)
    keep = {k: v for k, v in lc_docs[0].metadata.items() if k not in ("page", "page_label")}
    return Document(
        text="".join(parts),
        source=source,
        metadata={**keep, "loader": "langchain"},
        pages=tuple(spans),
    )


class LangChainEmbedder:
    """Use any LangChain ``Embeddings`` object as a ragkit embedder.

    Vectors are normalized to unit length (ragkit stores search by inner product).

    Example:
        >>> from langchain_huggingface import HuggingFaceEmbeddings  # doctest: +SKIP
        >>> lc = HuggingFaceEmbeddings()  # doctest: +SKIP
        >>> embedder = LangChainEmbedder(lc, model_id="hf-minilm")  # doctest: +SKIP

    Args:
        embeddings: the LangChain embeddings object.
        model_id: identifies the model in knowledge bases and caches; defaults to the
            object's ``model``/``model_name`` attribute or its class name.
    """

    def __init__(self, embeddings: Any, model_id: str | None = None) -> None:
        self.embeddings = embeddings
        self._model_id = model_id or str(
            getattr(embeddings, "model", None)
            or getattr(embeddings, "model_name", None)
            or type(embeddings).__name__
        )
        self._dimension: int | None = None

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_query("dimension probe").shape[0])
        return self._dimension

    @staticmethod
    def _normalize(rows: Any) -> NDArray[np.float32]:
        arr = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(arr, axis=-1, keepdims=True)
        return (arr / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._normalize(self.embeddings.embed_documents(list(texts)))

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self._normalize(self.embeddings.embed_query(text))


class LangChainRetriever:
    """Use any LangChain retriever as a ragkit retriever.

    LangChain documents carry no exact offsets; the chunk's ``start`` is taken from
    ``metadata["start_index"]`` when present (else 0), and its score from
    ``metadata["score"]`` when present, else from the rank.

    Args:
        retriever: a LangChain ``BaseRetriever`` (anything with ``invoke(query)``).
    """

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if filters:
            raise NotImplementedError("filters are configured on the LangChain retriever itself")
        out = []
        for rank, d in enumerate(self.retriever.invoke(query)[:k]):
            source = str(d.metadata.get("source", ""))
            start = int(d.metadata.get("start_index", 0) or 0)
            chunk = Chunk(
                id=chunk_id(source, start, d.page_content),
                text=d.page_content,
                document_id=document_id(source),
                source=source,
                start=start,
                end=start + len(d.page_content),
                metadata=dict(d.metadata),
            )
            out.append(ScoredChunk(chunk, float(d.metadata.get("score", 1.0 / (rank + 1)))))
        return out


def as_langchain_retriever(retriever: Retriever, k: int = 4, filters: Filters | None = None) -> Any:
    """Wrap a ragkit retriever (or a ``RAG``) as a LangChain ``BaseRetriever``.

    Each LangChain document's metadata carries the chunk's provenance: ``source``,
    ``chunk_id``, ``start``, ``end``, ``page``, ``page_end`` and ``score``.

    Example:
        >>> lc = as_langchain_retriever(rag, k=5)  # doctest: +SKIP
        >>> lc.invoke("timeouts")[0].metadata["page"]  # doctest: +SKIP
    """
    docs_mod = _langchain_core()
    retrievers = require(
        "langchain_core.retrievers",
        extra="langchain",
        purpose="as_langchain_retriever",
        package="langchain-core",
    )

    class RagkitLangChainRetriever(retrievers.BaseRetriever):  # type: ignore[misc,name-defined]
        """A ragkit retriever seen from LangChain."""

        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list[Any]:
            hits = retriever.retrieve(query, k, filters)
            return [
                docs_mod.Document(
                    page_content=h.chunk.text,
                    metadata={
                        **dict(h.chunk.metadata),
                        "source": h.chunk.source,
                        "chunk_id": h.chunk.id,
                        "start": h.chunk.start,
                        "end": h.chunk.end,
                        "page": h.chunk.page,
                        "page_end": h.chunk.page_end,
                        "score": h.score,
                    },
                )
                for h in hits
            ]

    return RagkitLangChainRetriever()


def _message_usage(messages: Sequence[Any]) -> Usage | None:
    """The token counts LangChain reports (``usage_metadata``), summed over the chunks
    of a stream; None when no message carries them."""
    found = (getattr(m, "usage_metadata", None) for m in messages)
    counts: list[Mapping[str, Any]] = [c for c in found if isinstance(c, Mapping)]
    if not counts:
        return None
    return Usage.from_wire({
        "prompt_tokens": sum(int(c.get("input_tokens") or 0) for c in counts),
        "completion_tokens": sum(int(c.get("output_tokens") or 0) for c in counts),
    })  # fmt: skip


def _message_text(message: Any) -> str:
    """The text of a LangChain message or chunk: ``content`` as a string, or the text
    blocks of a list content (multimodal and reasoning models send lists)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


class LangChainChatGenerator:
    """Use any LangChain chat model (``BaseChatModel``) as a ragkit generator.

    The ragkit instruction goes in as a ``SystemMessage`` and the numbered contexts plus
    the question as a ``HumanMessage``, under the same token budget as every ragkit
    generator. :meth:`stream` uses the model's own ``stream``, and ``RAG.stream`` /
    ``RetrievalQA.stream`` still end with the full ``Answer`` and its citations (a
    streamed LangChain chain loses its sources, langchain#19259).

    Example:
        >>> from langchain_ollama import ChatOllama  # doctest: +SKIP
        >>> gen = LangChainChatGenerator(ChatOllama(model="llama3.2"))  # doctest: +SKIP
        >>> for item in RetrievalQA(retriever, gen).stream("What is X?"):  # doctest: +SKIP
        ...     print(item if isinstance(item, str) else item.citations)

    Args:
        chat_model: a LangChain chat model (anything with ``invoke(messages)`` and
            ``stream(messages)`` returning messages and message chunks).
        builder: template and budget; by default a system + user chat prompt counted
            with tiktoken in a 4096-token window, 512 kept for the answer. Pass
            ``PromptBuilder(DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM,
            context_window=...)`` to match your model.
        model: the name recorded in answers; defaults to the chat model's ``model_name``
            or ``model`` attribute, else its class name.
    """

    def __init__(
        self, chat_model: Any, *, builder: PromptBuilder | None = None, model: str | None = None
    ) -> None:
        self.chat_model = chat_model
        self.builder = builder or PromptBuilder(DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM)
        self.model = model or str(
            getattr(chat_model, "model_name", None)
            or getattr(chat_model, "model", None)
            or type(chat_model).__name__
        )

    def _messages(self, prompt: Prompt) -> list[Any]:
        messages = require(
            "langchain_core.messages",
            extra="langchain",
            purpose="LangChainChatGenerator",
            package="langchain-core",
        )
        kinds = {
            "system": messages.SystemMessage,
            "user": messages.HumanMessage,
            "assistant": messages.AIMessage,
        }
        return [kinds[m.role](content=m.content) for m in prompt.messages]

    def _failed(self, exc: Exception) -> GenerationError:
        return GenerationError(f"the LangChain chat model {self.model!r} failed: {exc}")

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        prompt = self.builder.build(question, contexts)
        try:
            result = self.chat_model.invoke(self._messages(prompt))
        except Exception as exc:
            raise self._failed(exc) from exc
        return Generation(
            text=_message_text(result).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=_message_usage([result]),
        )

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        prompt = self.builder.build(question, contexts)
        parts: list[str] = []
        chunks: list[Any] = []
        try:
            for chunk in self.chat_model.stream(self._messages(prompt)):
                chunks.append(chunk)
                delta = _message_text(chunk)
                if delta:
                    parts.append(delta)
                    yield delta
        except Exception as exc:
            raise self._failed(exc) from exc
        yield Generation(
            text="".join(parts).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=_message_usage(chunks),
        )
