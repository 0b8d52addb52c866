"""Query rewriting with a language model: multi-query expansion and HyDE.

Both wrap any retriever, ask an LLM to rewrite the question, search with every rewrite
and fuse the rankings by reciprocal rank fusion. The LLM is anything that turns a
prompt into text (see :func:`as_completion`). Rewriting costs one LLM call per
question; if that call fails, the retriever searches with the question alone and logs
a warning, so a flaky LLM never costs an answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from ragkit.errors import ConfigurationError, GenerationError
from ragkit.protocols import Filters, Retriever
from ragkit.retrieval.fusion import reciprocal_rank_fusion
from ragkit.types import ScoredChunk

__all__ = [
    "HYDE_PROMPT",
    "MULTI_QUERY_PROMPT",
    "HyDERetriever",
    "MultiQueryRetriever",
    "as_completion",
    "parse_queries",
]

logger = logging.getLogger(__name__)

#: Prompt for :class:`MultiQueryRetriever`; ``{n}`` and ``{question}`` are filled in.
MULTI_QUERY_PROMPT = """\
You help a search engine find passages that answer a question. Write {n} different \
search queries for the question below. Use other words, synonyms and related terms, \
and make each query complete on its own.
Write one query per line, with no numbering and nothing else.

Question: {question}
Queries:"""

#: Prompt for :class:`HyDERetriever`; ``{question}`` is filled in.
HYDE_PROMPT = """\
Write a short passage (3 to 5 sentences) that answers the question below, in the \
style of the documents that would contain the answer. If you are unsure of the facts, \
write a plausible passage anyway: it is only used to search and is never shown.

Question: {question}
Passage:"""

Completion = Callable[[str], str]

# A list marker at the start of a line ("1.", "2)", "(3)", "4 -", "-", "*", "•", "Query 5:"),
# followed by a space so that "1.5 mg doses" keeps its number.
_MARKER = re.compile(
    r"^\s*(?:[-*•·–—]+|\(?\d{1,2}[.):]|\d{1,2}\s+[-–]|(?:query|q)\s*\d*\s*[:.)-])(?:\s+|$)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`"


def as_completion(llm: Any) -> Completion:
    """Turn an LLM object into a ``prompt -> text`` function.

    Accepted, in this order:

    * an object with a ``complete_prompt`` method (:class:`~ragkit.generation.OpenAIGenerator`
      and :class:`~ragkit.generation.LlamaCppGenerator`, whose ``complete`` takes chat
      messages): the prompt goes to it unchanged;
    * an object with a ``complete`` method (:class:`~ragkit.generation.CompletionGenerator`
      holds its completion function there): the prompt goes to it unchanged;
    * an object with ``invoke`` (a LangChain LLM or chat model): the reply's ``content``
      (its text blocks, when it is a list), or the reply itself for plain LLMs;
    * any callable ``prompt -> str``;
    * a ragkit :class:`~ragkit.protocols.Generator`: called as
      ``generate(prompt, [])``. A generator answers from contexts and may refuse
      without them (the extractive one always does); a refusal counts as a failure.

    Raises:
        ConfigurationError: ``llm`` is none of these.
    """
    complete = getattr(llm, "complete_prompt", None)
    if not callable(complete):
        complete = getattr(llm, "complete", None)
    if callable(complete):
        return _checked(complete)
    invoke = getattr(llm, "invoke", None)
    if callable(invoke):

        def via_invoke(prompt: str) -> str:
            reply = invoke(prompt)
            return _text_of(getattr(reply, "content", reply))

        return via_invoke
    if callable(llm):
        return _checked(llm)
    generate = getattr(llm, "generate", None)
    if callable(generate):

        def via_generate(prompt: str) -> str:
            generation = generate(prompt, [])
            if generation.refused:
                raise GenerationError(
                    f"{type(llm).__name__} refused the rewriting prompt; pass a "
                    "completion function (prompt -> text) instead"
                )
            return str(generation.text)

        return via_generate
    raise ConfigurationError(
        f"cannot use {type(llm).__name__} as an LLM: pass a function prompt -> text, an "
        "object with complete() or invoke(), or a ragkit Generator"
    )


def _text_of(content: Any) -> str:
    """The text of a chat reply's content: a string, or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block if isinstance(block, str) else block.get("text", "")
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        ]
        return "".join(parts)
    raise GenerationError(f"the LLM returned {type(content).__name__}, expected text")


def _checked(fn: Callable[[str], Any]) -> Completion:
    def complete(prompt: str) -> str:
        text = fn(prompt)
        if not isinstance(text, str):
            raise GenerationError(f"the LLM returned {type(text).__name__}, expected str")
        return text

    return complete


def _normalize(query: str) -> str:
    return " ".join(query.casefold().split())


def parse_queries(text: str, *, exclude: Sequence[str] = (), limit: int | None = None) -> list[str]:
    """The queries in an LLM's reply, one per line, cleaned up.

    Strips numbering (``1.``, ``2)``), bullets, ``Query 1:`` labels and surrounding
    quotes; drops blank lines, preambles that end with a colon ("Here are three
    queries:"), duplicates (ignoring case and spacing) and anything in ``exclude``.

    Example:
        >>> parse_queries("Here you go:\\n1. cat food\\n2) Cat  food\\n- dog food")
        ['cat food', 'dog food']
    """
    seen = {_normalize(q) for q in exclude}
    queries: list[str] = []
    for line in text.splitlines():
        query = line
        for _ in range(3):  # "1. - query" carries two markers
            query = _MARKER.sub("", query, count=1)
        query = query.strip().strip(_QUOTES).strip()
        if not query or query.endswith(":"):
            continue
        key = _normalize(query)
        if key in seen:
            continue
        seen.add(key)
        queries.append(query)
        if limit is not None and len(queries) >= limit:
            break
    return queries


def _fuse(
    retriever: Retriever,
    queries: Sequence[str],
    k: int,
    fetch_k: int | None,
    filters: Filters | None,
) -> list[ScoredChunk]:
    per_query = max(fetch_k or k, k)
    rankings = [retriever.retrieve(q, per_query, filters) for q in queries]
    if len(rankings) == 1:
        return rankings[0][:k]
    return reciprocal_rank_fusion(rankings, limit=k)


def _check_rewrite_args(prompt: str, fetch_k: int | None) -> None:
    if fetch_k is not None and fetch_k <= 0:
        raise ConfigurationError(f"fetch_k must be positive, got {fetch_k}")
    if "{question}" not in prompt:
        raise ConfigurationError("prompt must contain {question}")


class MultiQueryRetriever:
    """Searches with the question and ``n`` rewrites of it, fused by reciprocal rank.

    One LLM call per question writes the rewrites (prompt: :data:`MULTI_QUERY_PROMPT`);
    each query is searched with ``retriever`` and the rankings are fused with
    :func:`~ragkit.retrieval.reciprocal_rank_fusion`, so the scores are RRF scores.
    The original question is always one of the queries. Rewriting helps when questions
    use other words than the documents; it costs an LLM call and ``n`` more searches.

    Example:
        >>> dense = DenseRetriever(embedder, store)  # doctest: +SKIP
        >>> retriever = MultiQueryRetriever(dense, llm, n=3)  # doctest: +SKIP
        >>> qa = RetrievalQA(retriever, generator)  # doctest: +SKIP

    Args:
        retriever: searches for each query.
        llm: writes the rewrites; anything :func:`as_completion` accepts.
        n: rewrites to ask for (the question itself comes on top).
        prompt: template with ``{n}`` and ``{question}``.
        fetch_k: hits per query before fusion (default: the ``k`` asked for).
    """

    def __init__(
        self,
        retriever: Retriever,
        llm: Any,
        n: int = 3,
        *,
        prompt: str = MULTI_QUERY_PROMPT,
        fetch_k: int | None = None,
    ) -> None:
        if n <= 0:
            raise ConfigurationError(f"n must be positive, got {n}")
        _check_rewrite_args(prompt, fetch_k)
        self.retriever = retriever
        self.complete = as_completion(llm)
        self.n = n
        self.prompt = prompt
        self.fetch_k = fetch_k

    def queries(self, question: str) -> list[str]:
        """The question followed by up to ``n`` distinct rewrites of it.

        On an LLM failure, the question alone (and a logged warning).
        """
        try:
            reply = self.complete(self.prompt.format(n=self.n, question=question))
        except Exception as exc:  # any LLM failure falls back to the plain question
            logger.warning(
                "query rewriting failed (%s: %s); searching with the question alone",
                type(exc).__name__,
                exc,
            )
            return [question]
        rewrites = parse_queries(reply, exclude=[question], limit=self.n)
        if not rewrites:
            logger.warning("query rewriting gave no new query; searching with the question")
        logger.debug("multi-query %r -> %r", question, rewrites)
        return [question, *rewrites]

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if k <= 0:
            return []
        return _fuse(self.retriever, self.queries(query), k, self.fetch_k, filters)


class HyDERetriever:
    """Searches with a passage an LLM wrote to answer the question (HyDE).

    Hypothetical Document Embeddings (Gao et al., 2022): a made-up answer looks more
    like the passages that hold the real one than the question does, so it finds them
    better with a dense retriever, even when its facts are wrong. The passage comes
    from one LLM call (prompt: :data:`HYDE_PROMPT`). By default the question's own
    results are fused in by reciprocal rank, which guards against a passage that went
    astray; the scores are then RRF scores.

    Example:
        >>> retriever = HyDERetriever(DenseRetriever(embedder, store), llm)  # doctest: +SKIP
        >>> qa = RetrievalQA(retriever, generator)  # doctest: +SKIP

    Args:
        retriever: searches with the passage (and the question).
        llm: writes the passage; anything :func:`as_completion` accepts.
        prompt: template with ``{question}``.
        include_question: also search with the question and fuse both rankings;
            ``False`` searches with the passage alone.
        fetch_k: hits per search before fusion (default: the ``k`` asked for).
    """

    def __init__(
        self,
        retriever: Retriever,
        llm: Any,
        *,
        prompt: str = HYDE_PROMPT,
        include_question: bool = True,
        fetch_k: int | None = None,
    ) -> None:
        _check_rewrite_args(prompt, fetch_k)
        self.retriever = retriever
        self.complete = as_completion(llm)
        self.prompt = prompt
        self.include_question = include_question
        self.fetch_k = fetch_k

    def passage(self, question: str) -> str | None:
        """The hypothetical answer passage, or None when the LLM failed or wrote nothing."""
        try:
            text = self.complete(self.prompt.format(question=question)).strip()
        except Exception as exc:  # any LLM failure falls back to the plain question
            logger.warning(
                "HyDE passage generation failed (%s: %s); searching with the question alone",
                type(exc).__name__,
                exc,
            )
            return None
        if not text:
            logger.warning("HyDE: the LLM wrote an empty passage; searching with the question")
            return None
        logger.debug("HyDE %r -> %r", question, text)
        return text

    def queries(self, question: str) -> list[str]:
        """What gets searched: the passage, then the question (if included or no passage)."""
        passage = self.passage(question)
        if passage is None:
            return [question]
        return [passage, question] if self.include_question else [passage]

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if k <= 0:
            return []
        return _fuse(self.retriever, self.queries(query), k, self.fetch_k, filters)
