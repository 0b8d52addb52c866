"""Follow-up questions: a standalone search query from a question and the chat so far.

"And does it apply to shared caches?" cannot be searched alone: "it" is in the turn
before. A :class:`Condenser` turns the question and the history (OpenAI-shaped
messages, ``{"role": "user" | "assistant", "content": ...}``) into a query that can.
Two ship:

* :class:`LLMCondenser` asks a language model to rewrite the follow-up as a standalone
  question (the condense-question step of LangChain's history-aware retriever and
  LlamaIndex's condense chat engine); on any LLM failure it falls back to
* :class:`TermCondenser`, which needs no model: it appends the earlier turns' key
  words to the question, the more recent turns first (their weight decays by turn).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ragkit.analysis import STOPWORDS, content_terms
from ragkit.errors import ConfigurationError

__all__ = [
    "CONDENSE_PROMPT",
    "Condenser",
    "History",
    "LLMCondenser",
    "Message",
    "TermCondenser",
    "check_history",
    "default_condenser",
    "key_words",
]

logger = logging.getLogger(__name__)

#: One chat message, as OpenAI's chat API takes it: ``{"role": ..., "content": ...}``.
Message = Mapping[str, str]
#: The turns before the question, oldest first.
History = Sequence[Message]

_ROLES = frozenset({"user", "assistant"})

#: Prompt of :class:`LLMCondenser`; ``{history}`` and ``{question}`` are filled in.
CONDENSE_PROMPT = """\
Given the conversation below and a follow-up question, rewrite the follow-up question \
as a standalone question that can be understood without the conversation. Replace \
pronouns and vague references with the names they refer to. Do not answer it. If it is \
already standalone, repeat it unchanged. Write only the question.

Conversation:
{history}

Follow-up question: {question}
Standalone question:"""

# Words of a turn as written (case kept: it helps the dense embedder), with inner
# hyphens, apostrophes and dots ("Saint-Denis", "U.S.").
_WORD = re.compile(r"[^\W_]+(?:[-'.][^\W_]+)*")
# Words that are not topics: question words, auxiliaries and the like, beyond STOPWORDS.
_NOT_TOPICS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "did",
        "does",
        "do",
        "was",
        "were",
        "is",
        "are",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "also",
        "many",
        "much",
        "one",
        "ones",
        "name",
        "named",
        "called",
        "kind",
        "type",
        "year",
        "years",
        "time",
        "times",
        "yes",
        "no",
        "ok",
        "okay",
        "thanks",
        "thank",
        "please",
        "tell",
        "know",
    ]
)
# Words that point back at something named earlier. A question without one (and with
# enough words of its own) is searched as it is: carrying the words of a conversation
# on another subject costs more than it brings.
_REFERENCES = frozenset(
    [
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "this",
        "that",
        "these",
        "those",
        "there",
    ]
)
_LABEL = re.compile(r"^\s*(?:standalone question|question|rewritten question)\s*:\s*", re.I)


@runtime_checkable
class Condenser(Protocol):
    """Turns a follow-up question and the chat before it into a standalone query."""

    def condense(self, question: str, history: History) -> str:
        """The query to search with; ``question`` itself when ``history`` is empty."""
        ...


def check_history(history: Any) -> list[dict[str, str]]:
    """``history`` as a list of ``{"role", "content"}`` dicts, checked.

    Raises:
        ConfigurationError: ``history`` is not a list of messages whose role is
            ``"user"`` or ``"assistant"`` and whose content is a string.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise ConfigurationError(
            'history must be a list of {"role": "user"|"assistant", "content": str} '
            f"messages, got {type(history).__name__}"
        )
    checked = []
    for i, message in enumerate(history):
        if not isinstance(message, Mapping):
            raise ConfigurationError(f"history[{i}] must be a mapping, got {message!r}")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise ConfigurationError(
                f'history[{i}]["role"] must be "user" or "assistant", got {role!r}'
            )
        if not isinstance(content, str):
            raise ConfigurationError(
                f'history[{i}]["content"] must be a string, got {type(content).__name__}'
            )
        checked.append({"role": str(role), "content": content})
    return checked


def _turn_ages(history: History) -> list[int]:
    """How many user turns back each message is: the last user message and the answer
    after it are 1, the exchange before them 2, and so on."""
    users = sum(1 for message in history if message["role"] == "user")
    ages = []
    seen = 0
    for message in history:
        if message["role"] == "user":
            seen += 1
        ages.append(max(users - seen + 1, 1) if seen else users + 1)
    return ages


def key_words(text: str) -> list[str]:
    """The words of ``text`` that can name a topic, in order, each once (ignoring case)."""
    seen: set[str] = set()
    words = []
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower in STOPWORDS or lower in _NOT_TOPICS or len(word) < 2 or lower in seen:
            continue
        if lower.isdigit() and len(lower) < 3:
            continue  # "2" or "10" alone rarely names what a question is about
        seen.add(lower)
        words.append(word)
    return words


class TermCondenser:
    """Model-free: the question plus the key words of the turns before it.

    Every earlier message gives its key words (stopwords and question words removed,
    case kept) a weight: ``decay ** (age - 1)``, where ``age`` counts user turns back
    (the last question and the answer to it are age 1), times ``answer_weight`` for the
    assistant's messages. Words already in the question are skipped; the ``max_terms``
    heaviest words (at least ``min_weight``; on ties, the earlier in their message) are
    appended to the question. The defaults were chosen on SQuAD chains of articles
    00-11 (see ``docs/benchmarks/conversations.md``): the assistant's words are left out
    (``answer_weight=0``), as carrying them lowered the hit rate there.

    Example:
        >>> history = [{"role": "user", "content": "What is the no-store directive?"}]
        >>> TermCondenser().condense("Does it apply to shared caches?", history)
        'Does it apply to shared caches? no-store directive'

    Args:
        max_terms: at most this many carried words.
        decay: weight kept per turn back (1: all turns alike; 0: the last turn only).
        answer_weight: weight of the assistant's words relative to the user's.
        min_weight: carried words must weigh at least this.
        require_reference: carry words only when the question points back (a pronoun
            such as "it" or "their", a demonstrative such as "this" or "there") or has
            at most ``short`` content words of its own ("And in 2010?").
        short: see ``require_reference``.
    """

    def __init__(
        self,
        *,
        max_terms: int = 12,
        decay: float = 0.5,
        answer_weight: float = 0.0,
        min_weight: float = 0.2,
        require_reference: bool = True,
        short: int = 2,
    ) -> None:
        if max_terms < 0:
            raise ConfigurationError(f"max_terms must be >= 0, got {max_terms}")
        if not 0 <= decay <= 1:
            raise ConfigurationError(f"decay must be in [0, 1], got {decay}")
        if answer_weight < 0:
            raise ConfigurationError(f"answer_weight must be >= 0, got {answer_weight}")
        self.max_terms = max_terms
        self.decay = decay
        self.answer_weight = answer_weight
        self.min_weight = min_weight
        self.require_reference = require_reference
        self.short = short

    def refers_back(self, question: str) -> bool:
        """Whether ``question`` needs the conversation: it has a pronoun or demonstrative,
        or at most ``short`` content words."""
        words = {word.lower() for word in _WORD.findall(question)}
        return bool(words & _REFERENCES) or len(set(content_terms(question))) <= self.short

    def terms(self, question: str, history: History) -> list[str]:
        """The words carried from ``history``, heaviest first."""
        given = set(content_terms(question))
        weights: dict[str, float] = {}
        surface: dict[str, str] = {}
        order: dict[str, tuple[int, int]] = {}
        for i, (message, age) in enumerate(zip(history, _turn_ages(history), strict=True)):
            weight = self.decay ** (age - 1) if self.decay > 0 else float(age == 1)
            if message["role"] == "assistant":
                weight *= self.answer_weight
            if weight <= 0:
                continue
            for j, word in enumerate(key_words(message["content"])):
                stems = content_terms(word)
                if not stems or all(s in given for s in stems):
                    continue
                key = stems[0]
                if weight > weights.get(key, 0.0):
                    weights[key] = weight
                    surface[key] = word
                    order[key] = (-i, j)
        ranked = sorted(
            (key for key, weight in weights.items() if weight >= self.min_weight),
            key=lambda key: (-weights[key], order[key]),
        )
        return [surface[key] for key in ranked[: self.max_terms]]

    def condense(self, question: str, history: History) -> str:
        needed = not self.require_reference or self.refers_back(question)
        terms = self.terms(question, history) if history and needed else []
        return f"{question} {' '.join(terms)}" if terms else question


class LLMCondenser:
    """Asks a language model to rewrite the follow-up as a standalone question.

    One LLM call per question that has history (none without). The reply's first
    non-empty line is the query, a ``Standalone question:`` label and quotes removed.
    When the call fails or writes nothing, the ``fallback`` (model-free by default)
    condenses instead and a warning is logged, so a flaky LLM never costs an answer.

    Example:
        >>> condenser = LLMCondenser(lambda prompt: "Does no-store apply to shared caches?")
        >>> history = [{"role": "user", "content": "What is the no-store directive?"}]
        >>> condenser.condense("Does it apply to shared caches?", history)
        'Does no-store apply to shared caches?'

    Args:
        llm: anything :func:`~ragkit.retrieval.rewrite.as_completion` accepts: a function
            prompt -> text, an object with ``complete_prompt``, ``complete`` or ``invoke``
            (:class:`~ragkit.generation.OpenAIGenerator`,
            :class:`~ragkit.generation.LlamaCppGenerator`, a LangChain model).
        prompt: template with ``{history}`` and ``{question}``.
        max_turns: the last this many messages of the history go into the prompt.
        fallback: used when the LLM fails; default :class:`TermCondenser`.
        min_overlap: a rewrite must keep at least this share of the follow-up's content
            words, else it is taken for an answer or a digression and the fallback
            condenses instead (SmolLM2-135M mostly answers the question it is asked to
            rewrite: see ``docs/benchmarks/conversations.md``).
    """

    def __init__(
        self,
        llm: Any,
        *,
        prompt: str = CONDENSE_PROMPT,
        max_turns: int = 6,
        fallback: Condenser | None = None,
        min_overlap: float = 0.5,
    ) -> None:
        from ragkit.retrieval.rewrite import as_completion

        if "{question}" not in prompt or "{history}" not in prompt:
            raise ConfigurationError("prompt must contain {history} and {question}")
        if max_turns <= 0:
            raise ConfigurationError(f"max_turns must be positive, got {max_turns}")
        self.complete = as_completion(llm)
        self.prompt = prompt
        self.max_turns = max_turns
        self.min_overlap = min_overlap
        self.fallback: Condenser = fallback if fallback is not None else TermCondenser()

    def render(self, question: str, history: History) -> str:
        """The prompt sent to the LLM."""
        lines = [
            f"{'User' if m['role'] == 'user' else 'Assistant'}: {' '.join(m['content'].split())}"
            for m in history[-self.max_turns :]
        ]
        return self.prompt.format(history="\n".join(lines), question=question)

    def condense(self, question: str, history: History) -> str:
        if not history:
            return question
        try:
            reply = self.complete(self.render(question, history))
        except Exception as exc:  # any LLM failure falls back to the model-free method
            logger.warning(
                "condensing the follow-up with the LLM failed (%s: %s); using %s",
                type(exc).__name__,
                exc,
                type(self.fallback).__name__,
            )
            return self.fallback.condense(question, history)
        line = next((ln for ln in reply.splitlines() if ln.strip()), "")
        query = _LABEL.sub("", line).strip().strip("\"'“”‘’`").strip()
        if not query:
            logger.warning(
                "the LLM wrote no standalone question; using %s", type(self.fallback).__name__
            )
            return self.fallback.condense(question, history)
        asked = set(content_terms(question))
        kept = len(asked & set(content_terms(query))) / len(asked) if asked else 1.0
        if kept < self.min_overlap:
            logger.warning(
                "the LLM's rewrite %r keeps %.0f%% of the question's words; using %s",
                query,
                100 * kept,
                type(self.fallback).__name__,
            )
            return self.fallback.condense(question, history)
        logger.debug("condensed %r -> %r", question, query)
        return query


def default_condenser(generator: object) -> Condenser:
    """The generator's LLM when it can take a bare prompt (``complete_prompt`` or
    ``complete``, as the LLM generators have), else the model-free :class:`TermCondenser`.

    Not the bundled SmolLM2-135M: it mostly answers the follow-up instead of rewriting
    it, and on held-out SQuAD article chains its rewrites found the passage less often
    (hit@5 0.926 with the overlap guard) than :class:`TermCondenser` (0.963; see
    ``docs/benchmarks/conversations.md``).
    """
    if getattr(generator, "extractive", False) or _bundled_model(generator):
        return TermCondenser()
    for method in ("complete_prompt", "complete"):
        if callable(getattr(generator, method, None)):
            return LLMCondenser(generator)
    return TermCondenser()


def _bundled_model(generator: object) -> bool:
    """Whether ``generator`` runs the bundled SmolLM2-135M GGUF."""
    path = getattr(generator, "model_path", None)
    if path is None:
        return False
    from ragkit._deps import default_model_path

    bundled = default_model_path()
    return bundled is not None and Path(path).resolve() == bundled.resolve()
