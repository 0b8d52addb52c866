"""Prompt stuffing under a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragkit.errors import ConfigurationError
from ragkit.tokens import count_tokens
from ragkit.types import ScoredChunk

__all__ = ["DEFAULT_TEMPLATE", "REFUSAL", "Prompt", "PromptBuilder"]

#: What every generator answers when the contexts do not hold the answer.
REFUSAL = "I don't have enough information to answer that from the documents."

#: The instruction seed article 000 uses: cite with [n], refuse when unsure.
DEFAULT_TEMPLATE = (
    "You are a helpful assistant that answers questions using only the numbered context "
    "passages below. Cite the passages you use with their numbers in square brackets, "
    "like [1] or [2][3], right after the claim they support. If the context does not "
    'contain the answer, say "I don\'t have enough information" and nothing else.\n\n'
    "Context:\n{context}\n\n"
    "Question: {question}\n"
    "Answer:"
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A filled-in prompt and which chunks made it in.

    Attributes:
        text: the prompt.
        contexts: chunks in the prompt, numbered ``[1]``.. in this order.
        dropped: chunks left out because they did not fit, in rank order.
        tokens: tokens in ``text``.
    """

    text: str
    contexts: tuple[ScoredChunk, ...]
    dropped: tuple[ScoredChunk, ...]
    tokens: int


def format_context(n: int, hit: ScoredChunk) -> str:
    """One numbered passage as it appears in the prompt."""
    return f"[{n}] ({hit.chunk.location})\n{hit.chunk.text}"


class PromptBuilder:
    """Fills a template with numbered contexts so the prompt fits the model.

    The template, question and contexts never exceed ``context_window - answer_tokens``
    tokens. Contexts that do not fit are dropped whole, lowest-ranked first.

    Example:
        >>> builder = PromptBuilder(context_window=4096, answer_tokens=512)
        >>> prompt = builder.build("What is X?", hits)  # doctest: +SKIP
        >>> prompt.dropped  # chunks that did not fit  # doctest: +SKIP

    Args:
        template: contains ``{context}`` and ``{question}``.
        context_window: the model's context length in tokens.
        answer_tokens: tokens kept free for the answer.
        encoding: tiktoken encoding used to count (an estimate for non-OpenAI models;
            pass ``count`` for an exact tokenizer).
        count: a function counting tokens; overrides ``encoding``.
    """

    def __init__(
        self,
        template: str = DEFAULT_TEMPLATE,
        *,
        context_window: int = 4096,
        answer_tokens: int = 512,
        encoding: str = "cl100k_base",
        count: object = None,
    ) -> None:
        if "{context}" not in template or "{question}" not in template:
            raise ConfigurationError("template must contain {context} and {question}")
        if answer_tokens >= context_window:
            raise ConfigurationError(
                f"answer_tokens ({answer_tokens}) must be smaller than context_window "
                f"({context_window})"
            )
        self.template = template
        self.context_window = context_window
        self.answer_tokens = answer_tokens
        self.encoding = encoding
        self._count = count

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if callable(self._count):
            return int(self._count(text))
        return count_tokens(text, self.encoding)

    @property
    def budget(self) -> int:
        """Tokens the prompt may use."""
        return self.context_window - self.answer_tokens

    def render(self, question: str, contexts: Sequence[ScoredChunk]) -> str:
        """The prompt with these contexts, numbered from 1."""
        context = "\n\n".join(format_context(i, h) for i, h in enumerate(contexts, 1))
        return self.template.replace("{context}", context).replace("{question}", question)

    def build(self, question: str, contexts: Sequence[ScoredChunk]) -> Prompt:
        """Keep the best-ranked contexts that fit; raise if even none fit."""
        base = self.count(self.render(question, []))
        if base > self.budget:
            raise ConfigurationError(
                f"the template and question alone take {base} tokens, more than the "
                f"{self.budget} the model allows (context_window - answer_tokens)"
            )
        kept = list(contexts)
        dropped: list[ScoredChunk] = []
        # Passage costs add up (plus separators), so find the cut with one count per
        # passage, then verify on the rendered text and drop more if rounding misled us.
        costs = [self.count(format_context(i, h)) + 1 for i, h in enumerate(kept, 1)]
        while kept and base + sum(costs) > self.budget:
            dropped.insert(0, kept.pop())
            costs.pop()
        text = self.render(question, kept)
        tokens = self.count(text)
        while kept and tokens > self.budget:
            dropped.insert(0, kept.pop())
            text = self.render(question, kept)
            tokens = self.count(text)
        return Prompt(text=text, contexts=tuple(kept), dropped=tuple(dropped), tokens=tokens)
