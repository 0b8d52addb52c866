"""Prompt stuffing under a token budget, as one text or as chat messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragkit.errors import ConfigurationError
from ragkit.tokens import count_tokens
from ragkit.types import ScoredChunk

__all__ = [
    "DEFAULT_SYSTEM",
    "DEFAULT_TEMPLATE",
    "DEFAULT_USER_TEMPLATE",
    "REFUSAL",
    "ChatMessage",
    "Prompt",
    "PromptBuilder",
    "frame_messages",
]

#: What every generator answers when the contexts do not hold the answer.
REFUSAL = "I don't have enough information to answer that from the documents."

#: The instruction seed article 000 uses: cite with [n], refuse when unsure. Chat models
#: get it as the system message.
DEFAULT_SYSTEM = (
    "You are a helpful assistant that answers questions using only the numbered context "
    "passages below. Cite the passages you use with their numbers in square brackets, "
    "like [1] or [2][3], right after the claim they support. If the context does not "
    'contain the answer, say "I don\'t have enough information" and nothing else.'
)

#: The user message of a chat prompt: the numbered passages, then the question.
DEFAULT_USER_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"

#: The same instruction, passages and question as one text, for completion models.
DEFAULT_TEMPLATE = DEFAULT_SYSTEM + "\n\n" + DEFAULT_USER_TEMPLATE + "\nAnswer:"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat prompt.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the text of the message.
    """

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        """``{"role": ..., "content": ...}``, as chat-completion APIs take it."""
        return {"role": self.role, "content": self.content}


def frame_messages(messages: Sequence[ChatMessage]) -> str:
    """Messages as one text in a ChatML-like frame, for counting their tokens.

    Used when the model's own chat template is not at hand: the frame costs about what
    real chat templates add (a few tokens per message and the assistant header).
    """
    body = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A filled-in prompt and which chunks made it in.

    Attributes:
        text: the prompt.
        contexts: chunks in the prompt, numbered ``[1]``.. in this order.
        dropped: chunks left out because they did not fit, in rank order.
        tokens: tokens in ``text``.
        messages: the prompt as chat messages: the system message (when the builder has
            one), then the user message; a builder without ``system`` sends the whole
            prompt as one user message.
    """

    text: str
    contexts: tuple[ScoredChunk, ...]
    dropped: tuple[ScoredChunk, ...]
    tokens: int
    messages: tuple[ChatMessage, ...] = ()


def format_context(n: int, hit: ScoredChunk) -> str:
    """One numbered passage as it appears in the prompt."""
    return f"[{n}] ({hit.chunk.location})\n{hit.chunk.text}"


class PromptBuilder:
    """Fills a template with numbered contexts so the prompt fits the model.

    The template, question and contexts never exceed ``context_window - answer_tokens``
    tokens. Contexts that do not fit are dropped whole, lowest-ranked first.

    With ``system``, the prompt is a chat: a system message holding the instruction and
    a user message holding the filled ``template``. The budget then covers the rendered
    chat: ``chat_format`` (the model's own chat template, when a backend has it) or
    :func:`frame_messages`.

    Example:
        >>> builder = PromptBuilder(context_window=4096, answer_tokens=512)
        >>> prompt = builder.build("What is X?", hits)  # doctest: +SKIP
        >>> prompt.dropped  # chunks that did not fit  # doctest: +SKIP
        >>> chat = PromptBuilder(DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM)
        >>> [m.role for m in chat.build("What is X?", hits).messages]  # doctest: +SKIP
        ['system', 'user']

    Args:
        template: contains ``{context}`` and ``{question}``.
        system: the system message of a chat prompt; None for a single text.
        context_window: the model's context length in tokens.
        answer_tokens: tokens kept free for the answer.
        encoding: tiktoken encoding used to count (an estimate for non-OpenAI models;
            pass ``count`` for an exact tokenizer).
        count: a function counting tokens; overrides ``encoding``.
        chat_format: renders chat messages as the text the model reads (its chat
            template), so that they are counted exactly; only used with ``system``.
    """

    def __init__(
        self,
        template: str = DEFAULT_TEMPLATE,
        *,
        system: str | None = None,
        context_window: int = 4096,
        answer_tokens: int = 512,
        encoding: str = "cl100k_base",
        count: object = None,
        chat_format: Callable[[Sequence[ChatMessage]], str] | None = None,
    ) -> None:
        if "{context}" not in template or "{question}" not in template:
            raise ConfigurationError("template must contain {context} and {question}")
        if answer_tokens >= context_window:
            raise ConfigurationError(
                f"answer_tokens ({answer_tokens}) must be smaller than context_window "
                f"({context_window})"
            )
        self.template = template
        self.system = system
        self.chat_format = chat_format
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

    def fill(self, question: str, contexts: Sequence[ScoredChunk]) -> str:
        """The template filled with the question and these contexts, numbered from 1."""
        context = "\n\n".join(format_context(i, h) for i, h in enumerate(contexts, 1))
        return self.template.replace("{context}", context).replace("{question}", question)

    def messages(self, question: str, contexts: Sequence[ScoredChunk]) -> tuple[ChatMessage, ...]:
        """The prompt as chat messages: the system message, if any, then the user's."""
        user = ChatMessage("user", self.fill(question, contexts))
        if self.system is None:
            return (user,)
        return (ChatMessage("system", self.system), user)

    def render(self, question: str, contexts: Sequence[ScoredChunk]) -> str:
        """The text the model reads (and whose tokens count) with these contexts."""
        if self.system is None:
            return self.fill(question, contexts)
        messages = self.messages(question, contexts)
        return (self.chat_format or frame_messages)(messages)

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
        return Prompt(
            text=text,
            contexts=tuple(kept),
            dropped=tuple(dropped),
            tokens=tokens,
            messages=self.messages(question, kept),
        )
