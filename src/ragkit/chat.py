"""``Chat``: a conversation with a :class:`~ragkit.RAG` that keeps its history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from ragkit.retrieval.history import History, check_history
from ragkit.types import Answer

if TYPE_CHECKING:
    from ragkit.protocols import Filters

__all__ = ["Chat"]


class Asker(Protocol):
    """What a chat talks to: :class:`~ragkit.RAG` and :class:`~ragkit.chain.RetrievalQA`."""

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Answer: ...

    def stream(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        history: History | None = None,
    ) -> Iterator[str | Answer]: ...


class Chat:
    """A conversation: each question is asked as a follow-up of the ones before.

    Every ``ask`` (or finished ``stream``) adds the question and the answer's text to
    :attr:`history`, in the OpenAI message shape, so the next question can say "it" or
    "and in 2010?". A stream that is closed before its answer adds nothing. One
    ``Chat`` is one conversation: not meant to be shared between threads.

    Example:
        >>> chat = rag.chat()  # doctest: +SKIP
        >>> chat.ask("What is the no-store directive?")  # doctest: +SKIP
        >>> chat.ask("Does it apply to shared caches?")  # doctest: +SKIP
        >>> chat.history[0]  # doctest: +SKIP
        {'role': 'user', 'content': 'What is the no-store directive?'}
        >>> chat.reset()  # doctest: +SKIP

    Args:
        rag: answers the questions (a :class:`~ragkit.RAG` or a
            :class:`~ragkit.chain.RetrievalQA`).
        history: messages to start from (checked and copied).
        k: chunks per answer (default: the pipeline's).
        filters: metadata filters applied to every question.
    """

    def __init__(
        self,
        rag: Asker,
        history: History | None = None,
        *,
        k: int | None = None,
        filters: Filters | None = None,
    ) -> None:
        self.rag = rag
        self.k = k
        self.filters = filters
        self._history = check_history(history)

    @property
    def history(self) -> list[dict[str, str]]:
        """The conversation so far, oldest first (a copy)."""
        return [dict(message) for message in self._history]

    def reset(self) -> None:
        """Forget the conversation: the next question stands alone."""
        self._history = []

    def _record(self, question: str, answer: Answer) -> None:
        # a new list: a stream still running holds the one it was given
        self._history = [
            *self._history,
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.text},
        ]

    def ask(self, question: str) -> Answer:
        """Answer ``question`` as a follow-up of the conversation, and remember both."""
        answer = self.rag.ask(question, self.k, self.filters, history=self._history)
        self._record(question, answer)
        return answer

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Like :meth:`ragkit.RAG.stream`, as a follow-up; the exchange is remembered
        when the :class:`Answer` arrives."""
        for item in self.rag.stream(question, self.k, self.filters, history=self._history):
            if isinstance(item, Answer):
                self._record(question, item)
            yield item

    def __repr__(self) -> str:
        return f"Chat({len(self._history) // 2} exchanges)"
