"""Step 1, make pairs: (query, positive passage) pairs from a file or from a kb's chunks.

Three sources, one type (:class:`Pair`):

* a JSONL file, one ``{"query": ..., "positive": ..., "negatives": [...]}`` per line
  (the usual sentence-transformers layout; ``negatives`` and ``document_id`` optional):
  :func:`read_pairs` / :func:`write_pairs`;
* questions written by an LLM for a chunk, kept only when the chunk comes back in the
  top ``k`` of the kb for its question (:func:`synthetic_pairs`, the round-trip filter:
  a question the retriever cannot map back to its chunk is either too vague or
  answered elsewhere, and trains the wrong thing);
* the model-free inverse cloze task (:func:`inverse_cloze_pairs`): one sentence of the
  chunk is the query, the chunk without it the positive (Lee et al., 2019).

How many pairs per chunk: one by default, for both. Pairs of the same chunk share a
positive, so they can never be in-batch negatives of each other and add little over
the first; one per chunk covers the whole kb evenly, and the cost (an LLM call per
question, a training step per batch) grows with the count. ``per_chunk`` raises it for
a small kb (under about 1,000 chunks), where one pair each is too few to train on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.analysis import split_sentences
from ragkit.errors import ConfigurationError
from ragkit.protocols import Retriever
from ragkit.types import Chunk

__all__ = [
    "QUESTION_PROMPT",
    "Pair",
    "Progress",
    "inverse_cloze_pairs",
    "kb_chunks",
    "read_pairs",
    "synthetic_pairs",
    "write_pairs",
]

logger = logging.getLogger(__name__)

#: Called with (what, done, total) as a step advances.
Progress = Callable[[str, int, int], None]

#: The prompt a question writer gets for a chunk; ``{passage}`` is filled in.
QUESTION_PROMPT = """\
Write one question that the passage below answers. The question must make sense on \
its own, without the passage, and use the passage's own terms. Write only the \
question.

Passage: {passage}
Question:"""

#: Passages longer than this are cut before they go into the prompt (characters).
_MAX_PASSAGE_CHARS = 1500


@dataclass(frozen=True, slots=True)
class Pair:
    """A training example: a query and the passage that answers it.

    Attributes:
        query: the question or search text.
        positive: the passage text that answers it.
        negatives: passages that look relevant but are not (hard negatives).
        document_id: the document the positive comes from; the held-out split keeps
            a document's pairs together. Empty: the positive text stands for it.
    """

    query: str
    positive: str
    negatives: tuple[str, ...] = field(default=())
    document_id: str = ""

    @property
    def group(self) -> str:
        """What the by-document split groups by: the document id, else the positive."""
        if self.document_id:
            return self.document_id
        return "text:" + hashlib.sha256(self.positive.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form (``negatives`` and ``document_id`` only when set)."""
        data: dict[str, Any] = {"query": self.query, "positive": self.positive}
        if self.negatives:
            data["negatives"] = list(self.negatives)
        if self.document_id:
            data["document_id"] = self.document_id
        return data


def _pair_from(data: Any, where: str) -> Pair:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a JSON object, got {type(data).__name__}")
    query, positive = data.get("query"), data.get("positive")
    if not isinstance(query, str) or not query.strip():
        raise ConfigurationError(f'{where}: "query" must be a non-empty string')
    if not isinstance(positive, str) or not positive.strip():
        raise ConfigurationError(f'{where}: "positive" must be a non-empty string')
    negatives = data.get("negatives", [])
    if isinstance(negatives, str):
        negatives = [negatives]
    if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
        raise ConfigurationError(f'{where}: "negatives" must be a list of strings')
    document_id = data.get("document_id", "")
    return Pair(query, positive, tuple(negatives), str(document_id or ""))


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs of a JSONL file (blank lines skipped).

    Raises:
        ConfigurationError: the file is missing, or a line is not a pair (its number
            is in the message).
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read training pairs from {file}: {exc}") from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigurationError(f"{file}:{number}: not JSON ({exc})") from exc
        pairs.append(_pair_from(data, f"{file}:{number}"))
    return pairs


def write_pairs(pairs: Iterable[Pair], path: str | Path) -> int:
    """Write ``pairs`` as JSONL (what :func:`read_pairs` reads); returns how many."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with file.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def kb_chunks(rag: Any, *, page: int = 1000) -> list[Chunk]:
    """Every chunk of an open :class:`~ragkit.RAG` kb, in id order."""
    with rag.backend.reading():
        ids = sorted(rag.store.ids())
        chunks: list[Chunk] = []
        for i in range(0, len(ids), page):
            chunks.extend(rag.store.get(ids[i : i + page]))
    return chunks


def _sentences(text: str, min_words: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in split_sentences(text) if len(text[s:e].split()) >= min_words]


def inverse_cloze_pairs(
    chunks: Sequence[Chunk],
    *,
    per_chunk: int = 1,
    keep_sentence: float = 0.1,
    min_words: int = 6,
    seed: int = 0,
) -> list[Pair]:
    """Model-free pairs: a sentence of a chunk as the query, the chunk as the positive.

    The sentence is removed from the positive, except with probability
    ``keep_sentence`` (0.1, as in the inverse cloze task): always removing it would
    teach the model that the answer never repeats the query's words, never removing
    it would teach word matching only. Chunks with fewer than two sentences of at
    least ``min_words`` words give no pair (removing their only sentence leaves
    nothing to find).

    Args:
        chunks: the kb's chunks (their ``document_id`` groups the held-out split).
        per_chunk: pairs per chunk, at most one per sentence.
        keep_sentence: probability of leaving the query sentence in the positive.
        min_words: shortest sentence taken as a query.
        seed: makes the sentence choice repeatable.
    """
    if per_chunk <= 0:
        raise ConfigurationError(f"per_chunk must be positive, got {per_chunk}")
    rng = random.Random(seed)
    pairs = []
    for chunk in chunks:
        text = chunk.text
        spans = _sentences(text, min_words)
        if len(spans) < 2:
            continue
        for start, end in rng.sample(spans, min(per_chunk, len(spans))):
            query = " ".join(text[start:end].split())
            if rng.random() < keep_sentence:
                positive = text
            else:
                positive = " ".join((text[:start] + " " + text[end:]).split())
            pairs.append(Pair(query, positive, document_id=chunk.document_id))
    return pairs


def _question(reply: str) -> str:
    """The first non-empty line of the LLM's reply, without a label or quotes."""
    for raw in reply.splitlines():
        line = raw.strip().strip("\"'“”").strip()
        for label in ("question:", "q:"):
            if line.casefold().startswith(label):
                line = line[len(label) :].strip()
        if line:
            return line
    return ""


def _round_trips(retriever: Retriever, question: str, chunk: Chunk, k: int) -> bool:
    return any(hit.chunk.id == chunk.id for hit in retriever.retrieve(question, k))


def synthetic_pairs(
    chunks: Sequence[Chunk],
    llm: Any,
    retriever: Retriever,
    *,
    per_chunk: int = 1,
    attempts: int = 2,
    top_k: int = 3,
    min_words: int = 4,
    prompt: str = QUESTION_PROMPT,
    progress: Progress | None = None,
) -> list[Pair]:
    """Pairs from questions an LLM writes for each chunk, round-trip filtered.

    For each chunk the LLM is asked up to ``attempts`` times (each reply's first line
    is the question); a question is kept when it has at least ``min_words`` words, is
    not a copy of a sentence of the chunk, and ``retriever`` returns the chunk in its
    top ``top_k`` for it. At most ``per_chunk`` questions are kept per chunk.

    Args:
        chunks: the chunks to write questions for (sample a large kb first).
        llm: anything :func:`ragkit.retrieval.rewrite.as_completion` accepts: a
            :class:`~ragkit.generation.LlamaCppGenerator` (the bundled SmolLM2),
            an :class:`~ragkit.generation.OpenAIGenerator`, a LangChain model, or a
            function ``prompt -> text``.
        retriever: the kb's retriever (a :class:`~ragkit.RAG` works).
        top_k: how high the chunk must come back.
        progress: called with ``("questions", done, total)`` after each chunk.
    """
    from ragkit.retrieval.rewrite import as_completion

    if per_chunk <= 0 or attempts <= 0 or top_k <= 0:
        raise ConfigurationError("per_chunk, attempts and top_k must be positive")
    complete = as_completion(llm)
    pairs: list[Pair] = []
    asked = kept = 0
    for done, chunk in enumerate(chunks, 1):
        passage = chunk.text[:_MAX_PASSAGE_CHARS]
        copies = {" ".join(chunk.text[s:e].split()).casefold() for s, e in split_sentences(passage)}
        found: list[str] = []
        for _ in range(attempts):
            if len(found) >= per_chunk:
                break
            asked += 1
            question = _question(complete(prompt.format(passage=passage)))
            if (
                len(question.split()) < min_words
                or question.casefold() in copies
                or question in found
            ):
                continue
            if _round_trips(retriever, question, chunk, top_k):
                found.append(question)
        kept += len(found)
        pairs.extend(Pair(q, chunk.text, document_id=chunk.document_id) for q in found)
        if progress is not None:
            progress("questions", done, len(chunks))
    logger.info("synthetic pairs: %d kept of %d questions for %d chunks", kept, asked, len(chunks))
    return pairs
