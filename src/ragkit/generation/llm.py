"""Prompt-stuffing generation with any text-completion function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from ragkit.generation.prompt import PromptBuilder
from ragkit.types import Generation, ScoredChunk

__all__ = ["CompletionGenerator"]


class CompletionGenerator:
    """Stuffs the numbered contexts into a prompt and hands it to a completion function.

    The function can be anything that maps a prompt to text: a local model, an HTTP
    client, a LangChain ``llm.invoke``. Contexts that do not fit the model's context
    window are dropped whole, lowest-ranked first, and listed in ``Generation.dropped``.

    Example:
        >>> gen = CompletionGenerator(lambda prompt: "Paris [1].", model="my-llm")
        >>> gen.generate("Capital of France?", hits).text  # doctest: +SKIP
        'Paris [1].'

    Args:
        complete: prompt -> answer text.
        stream: prompt -> iterator of text deltas; enables :meth:`stream` token by
            token (without it, :meth:`stream` yields the whole answer at once).
        builder: the template and token budget.
        model: the name recorded in answers.
    """

    def __init__(
        self,
        complete: Callable[[str], str],
        *,
        stream: Callable[[str], Iterable[str]] | None = None,
        builder: PromptBuilder | None = None,
        model: str = "completion",
    ) -> None:
        self.complete = complete
        self._stream = stream
        self.builder = builder or PromptBuilder()
        self.model = model

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        prompt = self.builder.build(question, contexts)
        text = self.complete(prompt.text).strip()
        return Generation(
            text=text, contexts=prompt.contexts, dropped=prompt.dropped, model=self.model
        )

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        prompt = self.builder.build(question, contexts)
        if self._stream is None:
            pieces: Iterable[str] = [self.complete(prompt.text)]
        else:
            pieces = self._stream(prompt.text)
        parts = []
        for piece in pieces:
            parts.append(piece)
            yield piece
        yield Generation(
            text="".join(parts).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
        )
