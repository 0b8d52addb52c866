"""The question-answering chain: retrieve, optionally re-rank, generate, cite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from ragkit.citations import answer_from_generation
from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters, Generator, Reranker, Retriever
from ragkit.types import (
    Answer,
    DeltaEvent,
    DoneEvent,
    Generation,
    ScoredChunk,
    SourcesEvent,
    StreamEvent,
    text_then_answer,
)

if TYPE_CHECKING:
    from ragkit.retrieval.history import Condenser, History
    from ragkit.verification import CitationVerifier, VectorMemo

__all__ = ["RetrievalQA"]

logger = logging.getLogger(__name__)


class RetrievalQA:
    """Answers questions from a retriever's chunks, with a citation per ``[n]`` marker.

    Plain composition: the chain holds its components and calls them in order. Any
    object with the right method fits each slot.

    Example:
        >>> from ragkit.generation import ExtractiveGenerator
        >>> qa = RetrievalQA(retriever, ExtractiveGenerator())  # doctest: +SKIP
        >>> answer = qa.ask("How do I set a timeout?", k=4)  # doctest: +SKIP
        >>> [c.source for c in answer.citations]  # doctest: +SKIP
        >>> history = [{"role": "user", "content": "How do I set a timeout?"},
        ...            {"role": "assistant", "content": answer.text}]  # doctest: +SKIP
        >>> qa.ask("Does it apply to pools?", history=history)  # doctest: +SKIP

    Args:
        retriever: finds candidate chunks.
        generator: writes the answer from the chunks.
        reranker: optional; reorders ``fetch_k`` candidates and keeps the best ``k``.
        verifier: optional; refuses when nothing retrieved is relevant enough, and checks
            every claim of the answer against the passages (see
            :class:`ragkit.verification.CitationVerifier`).
        k: chunks given to the generator by default.
        fetch_k: candidates retrieved for the reranker (default ``4 * k``).
        condenser: turns a follow-up question and its ``history`` into the standalone
            query that is searched and answered (see :mod:`ragkit.retrieval.history`).
            Default: the generator's LLM when it has one (``complete_prompt`` or
            ``complete``), else the model-free
            :class:`~ragkit.retrieval.history.TermCondenser`.
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        reranker: Reranker | None = None,
        *,
        verifier: CitationVerifier | None = None,
        k: int = 4,
        fetch_k: int | None = None,
        condenser: Condenser | None = None,
    ) -> None:
        from ragkit.retrieval.history import default_condenser

        if k <= 0:
            raise ConfigurationError(f"k must be positive, got {k}")
        if fetch_k is not None and fetch_k <= 0:
            raise ConfigurationError(f"fetch_k must be positive, got {fetch_k}")
        self.retriever = retriever
        self.generator = generator
        self.reranker = reranker
        self.verifier = verifier
        self.k = k
        self.fetch_k = fetch_k
        self.condenser: Condenser = (
            condenser if condenser is not None else default_condenser(generator)
        )

    def standalone(self, question: str, history: History | None = None) -> str:
        """The query searched and answered for ``question`` after ``history``: the
        question itself without history, else the condenser's rewrite."""
        from ragkit.retrieval.history import check_history

        turns = check_history(history)
        if not turns:
            return question
        query = self.condenser.condense(question, turns)
        logger.debug("follow-up %r searched as %r", question, query)
        return query or question

    def retrieve(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> list[ScoredChunk]:
        """The chunks the generator would see for ``question`` (after ``history``, a
        list of ``{"role": "user"|"assistant", "content": ...}`` messages), best first."""
        return self._retrieve(self.standalone(question, history), k, filters)

    def _retrieve(self, question: str, k: int | None, filters: Filters | None) -> list[ScoredChunk]:
        k = self.k if k is None else k
        if k <= 0:
            raise ConfigurationError(f"k must be positive, got {k}")
        if self.reranker is None:
            return self.retriever.retrieve(question, k, filters)
        fetch_k = max(self.fetch_k or 4 * k, k)
        candidates = self.retriever.retrieve(question, fetch_k, filters)
        return self.reranker.rerank(question, candidates, k)

    def _refusal(self, question: str, hits: list[ScoredChunk], memo: VectorMemo) -> Answer | None:
        """The grounded refusal, when nothing retrieved is relevant enough to answer from."""
        if self.verifier is None:
            return None
        if hits and self.verifier.relevance(question, hits, memo) >= self.verifier.min_relevance:
            return None
        from ragkit.generation.prompt import REFUSAL

        logger.debug("no retrieved passage is relevant enough to %r; refusing", question)
        return Answer(question=question, text=REFUSAL, refused=True, related=tuple(hits[:3]))

    def _finish(self, question: str, generation: Generation, memo: VectorMemo) -> Answer:
        answer = answer_from_generation(question, generation)
        if self.verifier is not None:
            answer = self.verifier.verify(answer, memo)
        return answer

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Answer:
        """Answer ``question``; see :class:`ragkit.types.Answer` for what comes back.

        With ``history`` (the conversation so far, OpenAI-shaped messages), the
        standalone query (:meth:`standalone`) is retrieved and given to the generator;
        ``Answer.question`` stays ``question``.
        """
        query = self.standalone(question, history)
        hits = self._retrieve(query, k, filters)
        memo: VectorMemo = {}  # the verifier embeds each sentence once per question
        refusal = self._refusal(query, hits, memo)
        if refusal is not None:
            return _asked(refusal, question)
        generation = self.generator.generate(query, hits)
        answer = _asked(self._finish(query, generation, memo), question)
        if answer.invalid_markers:
            logger.warning(
                "generator %s cited %s, which match no context; removed",
                generation.model,
                answer.invalid_markers,
            )
        return answer

    def stream(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer text as it is verified, then the complete :class:`Answer`.

        The text pieces joined are the answer's text: a sentence is yielded once it is
        verified (see :meth:`events`). Generators without a ``stream`` method yield
        their whole text at once.
        """
        yield from text_then_answer(self.events(question, k, filters, history=history))

    def events(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Iterator[StreamEvent]:
        """The answer as events: the sources, verified text and citations, then the answer.

        :class:`~ragkit.types.SourcesEvent` comes first, once (the retrieved passages);
        then :class:`~ragkit.types.DeltaEvent` and :class:`~ragkit.types.CitationEvent`
        as sentences are written and verified; last, one
        :class:`~ragkit.types.DoneEvent` with the whole :class:`Answer`. A sentence is
        sent only once verification cannot change it any more
        (:class:`~ragkit.verification.streaming.VerifiedStream`), so the deltas joined
        are the final answer's text. Closing the iterator early stops the generator.
        """
        from ragkit.verification.streaming import VerifiedStream

        query = self.standalone(question, history)
        hits = self._retrieve(query, k, filters)
        yield SourcesEvent(tuple(hits))
        memo: VectorMemo = {}  # the verifier embeds each sentence once per question
        refusal = self._refusal(query, hits, memo)
        if refusal is not None:
            refusal = _asked(refusal, question)
            yield DeltaEvent(refusal.text)
            yield DoneEvent(refusal)
            return
        verifier = self.verifier
        verified = VerifiedStream(
            lambda generation: self._finish(query, generation, memo),
            hits,
            model=str(getattr(self.generator, "model", "")),
            hold_all=verifier is not None and verifier.min_threshold < verifier.threshold,
        )
        stream = getattr(self.generator, "stream", None)
        generation: Generation | None = None
        if stream is None:
            generation = self.generator.generate(query, hits)
        else:
            items = stream(query, hits)
            try:
                for item in items:
                    if isinstance(item, Generation):
                        generation = item
                    else:
                        yield from verified.feed(item)
            finally:
                close = getattr(items, "close", None)
                if callable(close):
                    close()  # a consumer that stopped early stops the generator
        if generation is None:
            raise ConfigurationError(
                f"{type(self.generator).__name__}.stream() ended without a Generation"
            )
        events, answer = verified.close(generation)
        answer = _asked(answer, question)
        yield from events
        if answer.invalid_markers:
            logger.warning(
                "generator %s cited %s, which match no context; removed",
                generation.model,
                answer.invalid_markers,
            )
        yield DoneEvent(answer)


def _asked(answer: Answer, question: str) -> Answer:
    """``answer`` for what the user asked (it was written for the standalone query)."""
    return answer if answer.question == question else replace(answer, question=question)
