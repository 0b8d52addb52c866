"""A ragkit pipeline as a LangChain ``Runnable``: the question in, the cited answer out."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ragkit._deps import require
from ragkit.protocols import Filters
from ragkit.types import Answer, Citation, DeltaEvent, DoneEvent, StreamEvent

__all__ = ["as_runnable", "citation_dict"]


class _Pipeline(Protocol):
    """What ``RAG`` and ``RetrievalQA`` both have."""

    def ask(self, question: str, k: int | None = None, filters: Filters | None = None) -> Answer:
        """Answer with citations."""
        ...

    def events(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> Iterator[StreamEvent]:
        """The answer as events."""
        ...


def citation_dict(citation: Citation) -> dict[str, Any]:
    """A citation as plain data: marker, source, page(s), location, offsets, quote."""
    return {
        "marker": citation.marker,
        "source": citation.source,
        "page": citation.page,
        "page_end": citation.page_end,
        "location": citation.location,
        "start": citation.start,
        "end": citation.end,
        "quote": citation.quote,
        "chunk_id": citation.chunk_id,
    }


def _tail(answer: Answer) -> dict[str, Any]:
    """Everything of the output but the text."""
    return {
        "question": answer.question,
        "citations": [citation_dict(c) for c in answer.citations],
        "refused": answer.refused,
        "unsupported": list(answer.unsupported),
    }


def _question(value: Any) -> tuple[str, int | None, Filters | None]:
    if isinstance(value, str):
        return value, None, None
    if isinstance(value, Mapping):
        for key in ("question", "input", "query"):
            if isinstance(value.get(key), str):
                return value[key], value.get("k"), value.get("filters")
    raise TypeError(
        "a ragkit runnable takes a question: a string, or a dict with 'question' "
        f"(and optionally 'k' and 'filters'); got {type(value).__name__}"
    )


@functools.cache
def _runnable_class() -> type:
    runnables = require(
        "langchain_core.runnables", extra="langchain", purpose="as_runnable",
        package="langchain-core",
    )  # fmt: skip

    class RagkitRunnable(runnables.Runnable):  # type: ignore[misc,name-defined]
        """A ragkit pipeline seen from LangChain (see :func:`as_runnable`)."""

        def __init__(self, pipeline: _Pipeline, k: int | None, filters: Filters | None):
            self.pipeline = pipeline
            self.k = k
            self.filters = filters

        def _args(self, value: Any) -> tuple[str, int | None, Filters | None]:
            question, k, filters = _question(value)
            return question, k if k is not None else self.k, filters or self.filters

        def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> dict[str, Any]:
            def run(value: Any) -> dict[str, Any]:
                answer = self.pipeline.ask(*self._args(value))
                return {"answer": answer.text, **_tail(answer)}

            result: dict[str, Any] = self._call_with_config(run, input, config)
            return result

        def stream(
            self,
            input: Any,
            config: Any = None,
            **kwargs: Any,
        ) -> Iterator[dict[str, Any]]:
            def events(values: Iterator[Any]) -> Iterator[dict[str, Any]]:
                for value in values:
                    for event in self.pipeline.events(*self._args(value)):
                        if isinstance(event, DeltaEvent) and event.text:
                            yield {"answer": event.text}
                        elif isinstance(event, DoneEvent):
                            yield _tail(event.answer)

            yield from self._transform_stream_with_config(iter([input]), events, config)

    return RagkitRunnable


def as_runnable(
    pipeline: _Pipeline, *, k: int | None = None, filters: Filters | None = None
) -> Any:
    """A ``RAG`` (or ``RetrievalQA``) as a LangChain ``Runnable``.

    The input is the question, as a string or a dict with ``question`` (or ``input``,
    ``query``), and optionally ``k`` and ``filters``. ``invoke`` returns a dict:
    ``answer`` (the text with its ``[n]`` markers), ``citations`` (one dict per marker:
    ``marker``, ``source``, ``page``, ``page_end``, ``location``, ``start``, ``end``,
    ``quote``, ``chunk_id``), ``question``, ``refused`` and ``unsupported``. ``stream``
    yields ``{"answer": delta}`` pieces of verified text, then one dict with the rest, so
    LangChain's merge of the chunks equals what ``invoke`` returns. ``batch`` runs
    questions in LangChain's thread pool (``RAG`` serves concurrent reads).

    Example:
        >>> chain = as_runnable(rag, k=4)  # doctest: +SKIP
        >>> out = chain.invoke("How many checks in Texas?")  # doctest: +SKIP
        >>> out["citations"][0]["location"]  # doctest: +SKIP
        'report.pdf, p. 2'
        >>> summary = chain | (lambda out: out["answer"].upper())  # doctest: +SKIP
    """
    return _runnable_class()(pipeline, k, filters)
