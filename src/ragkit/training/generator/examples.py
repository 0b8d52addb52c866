"""Step 1, make examples: RAFT-style training examples for the answering model.

Each question becomes (at most) two examples (Zhang et al., 2024, "RAFT"):

* **answer**: the passage that answers it among distractors, in the prompt exactly as
  the serving generator numbers and budgets them; the target quotes the sentence of
  that passage holding the answer and cites it: ``"<sentence> [n]"``;
* **refusal** (a ``refusal`` share of the questions): the same question with every
  passage that holds the answer removed, so only distractors remain; the target is
  :data:`~ragkit.generation.prompt.REFUSAL`.

Distractors are what the retriever returns (a kb: :meth:`RAG.retrieve`), or, for a SQuAD
file without a kb, other passages of the same article. The prompt text is rendered by
the serving generator's own :class:`~ragkit.generation.PromptBuilder` (its ``builder``:
same template, numbering, token budget and chat template), so what is trained is what
runs.

Example:
    >>> from ragkit.generation import LlamaCppGenerator
    >>> gen = LlamaCppGenerator()  # doctest: +SKIP
    >>> examples = squad_examples("dev.json", gen.builder, articles=range(12))  # doctest: +SKIP
    >>> write_examples(examples, "train.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ragkit.analysis import split_sentences
from ragkit.chunking import RecursiveChunker
from ragkit.errors import ConfigurationError
from ragkit.eval._squad_data import read_squad
from ragkit.eval._squad_metric import contains_answer
from ragkit.generation.prompt import REFUSAL, PromptBuilder
from ragkit.protocols import Chunker, Filters
from ragkit.types import Chunk, Document, ScoredChunk

__all__ = [
    "GeneratorExample",
    "Retrieve",
    "cited_quote",
    "make_example",
    "pair_examples",
    "read_examples",
    "squad_examples",
    "write_examples",
]

#: Called after each question with (what, done, total).
Progress = Callable[[str, int, int], None]


class Retrieve(Protocol):
    """What distractors are drawn from: :meth:`RAG.retrieve` fits."""

    def __call__(
        self, query: str, k: int | None = None, filters: Filters | None = None
    ) -> list[ScoredChunk]: ...


@dataclass(frozen=True, slots=True)
class GeneratorExample:
    """One training example: the prompt the generator sends, and the answer to learn.

    Attributes:
        question: the question.
        prompt: the text the model reads (chat template applied), as the serving
            generator renders it.
        completion: the target answer (a cited quote, or the refusal).
        refusal: True when the answering passage was removed and the target refuses.
        contexts: ids of the chunks in the prompt, numbered ``[1]``.. in this order.
        document_id: the document that answers the question.
    """

    question: str
    prompt: str
    completion: str
    refusal: bool
    contexts: tuple[str, ...] = ()
    document_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "prompt": self.prompt,
            "completion": self.completion,
            "refusal": self.refusal,
            "contexts": list(self.contexts),
            "document_id": self.document_id,
        }


def cited_quote(text: str, answers: Sequence[str], marker: int) -> str | None:
    """The first sentence of ``text`` holding one of ``answers``, cited ``[marker]``;
    None when no single sentence holds one."""
    for start, end in split_sentences(text):
        sentence = " ".join(text[start:end].split())
        if sentence and contains_answer(sentence, answers):
            return f"{sentence} [{marker}]"
    return None


def make_example(
    builder: PromptBuilder,
    question: str,
    contexts: Sequence[ScoredChunk],
    answers: Sequence[str],
    *,
    gold: str | None,
    document_id: str | None = None,
) -> GeneratorExample | None:
    """An example for ``question`` over ``contexts`` as ``builder`` prompts them.

    ``gold`` is the id of the answering chunk among ``contexts`` (an answer example), or
    None (a refusal example: no context may hold an answer). None when the answering
    chunk did not fit the budget or no sentence of it holds the answer.
    """
    prompt = builder.build(question, contexts)
    kept = [hit.chunk.id for hit in prompt.contexts]
    text = builder.render(question, prompt.contexts)
    if gold is None:
        if any(contains_answer(hit.chunk.text, answers) for hit in prompt.contexts):
            return None
        return GeneratorExample(question, text, REFUSAL, True, tuple(kept), document_id)
    if gold not in kept:
        return None
    chunk = prompt.contexts[kept.index(gold)].chunk
    completion = cited_quote(chunk.text, answers, kept.index(gold) + 1)
    if completion is None:
        return None
    return GeneratorExample(question, text, completion, False, tuple(kept), document_id)


def _with_gold(
    hits: Sequence[ScoredChunk], gold: ScoredChunk, k: int, rng: random.Random
) -> list[ScoredChunk]:
    """The top ``k`` hits with ``gold`` among them: kept where the retriever put it, or,
    when it was not retrieved, put at a random place among the best ``k - 1`` others."""
    top = list(hits[:k])
    if any(hit.chunk.id == gold.chunk.id for hit in top):
        return top
    others = [hit for hit in hits if hit.chunk.id != gold.chunk.id][: k - 1]
    others.insert(rng.randrange(len(others) + 1), gold)
    return others


def _without(
    hits: Sequence[ScoredChunk], answers: Sequence[str], document_id: str | None
) -> list[ScoredChunk]:
    return [
        hit
        for hit in hits
        if hit.chunk.document_id != document_id and not contains_answer(hit.chunk.text, answers)
    ]


def _question_examples(
    builder: PromptBuilder,
    question: str,
    *,
    answers: Sequence[str],
    document_id: str | None,
    gold: ScoredChunk,
    candidates: Sequence[ScoredChunk],
    k: int,
    refuse: bool,
    rng: random.Random,
) -> list[GeneratorExample]:
    out: list[GeneratorExample] = []
    answer = make_example(
        builder,
        question,
        _with_gold(candidates, gold, k, rng),
        answers,
        gold=gold.chunk.id,
        document_id=document_id,
    )
    if answer is not None:
        out.append(answer)
    if refuse:
        distractors = _without(candidates, answers, document_id)[:k]
        if distractors:
            refusal = make_example(
                builder, question, distractors, answers, gold=None, document_id=document_id
            )
            if refusal is not None:
                out.append(refusal)
    return out


def _gold_chunk(chunks: Sequence[Chunk], answers: Sequence[str]) -> Chunk | None:
    for chunk in chunks:
        if contains_answer(chunk.text, answers):
            return chunk
    return None


def _check(ks: Sequence[int], refusal: float) -> None:
    if not ks or any(k <= 0 for k in ks):
        raise ConfigurationError(f"ks must be positive chunk counts, got {list(ks)}")
    if not 0.0 <= refusal <= 1.0:
        raise ConfigurationError(f"refusal must be a share between 0 and 1, got {refusal}")


def squad_examples(
    path: str | Path,
    builder: PromptBuilder,
    *,
    retrieve: Retrieve | None = None,
    chunker: Chunker | None = None,
    articles: Iterable[int] | None = None,
    ks: Sequence[int] = (1, 4),
    refusal: float = 0.3,
    max_questions: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[GeneratorExample]:
    """RAFT examples from a SQuAD-format file.

    Args:
        path: the SQuAD JSON file.
        builder: the serving generator's prompt builder (``LlamaCppGenerator().builder``
            or ``TransformersGenerator(...).builder``).
        retrieve: where distractors come from (``rag.retrieve`` of a kb holding the
            file's paragraphs); None: other passages of the same article.
        chunker: how paragraphs become passages (the kb's chunker; default
            ``RecursiveChunker()``, RAG's default).
        articles: indexes of the articles to use (file order), e.g. ``range(12)``.
        ks: passages per prompt, one drawn per question (eval asks with 1 and 4).
        refusal: share of questions that also get a refusal example.
        max_questions: at most this many questions (a seeded sample).
        seed: seed of the sample, the k draws and the distractors.
        progress: called with ("examples", done, total).
    """
    _check(ks, refusal)
    rng = random.Random(seed)
    chunker = chunker or RecursiveChunker()
    documents, questions = read_squad(path)
    titles = list(dict.fromkeys(doc.metadata.get("title", "") for doc in documents))
    wanted = set(range(len(titles)) if articles is None else articles)
    keep = {titles[i] for i in wanted if 0 <= i < len(titles)}
    chunks: dict[str, list[Chunk]] = {}
    by_article: dict[str, list[Chunk]] = {}
    for doc in documents:
        if doc.metadata.get("title") in keep:
            pieces = chunker.split(Document(doc.text, doc.source, doc.id, doc.metadata))
            chunks[doc.id] = pieces
            by_article.setdefault(str(doc.metadata.get("title")), []).extend(pieces)
    todo = [q for q in questions if q.title in keep and q.answers and not q.is_impossible]
    if max_questions is not None and max_questions < len(todo):
        todo = [todo[i] for i in sorted(rng.sample(range(len(todo)), max_questions))]
    out: list[GeneratorExample] = []
    for done, q in enumerate(todo, 1):
        gold = _gold_chunk(chunks.get(q.document_id, ()), q.answers)
        if gold is not None:
            k = rng.choice(list(ks))
            if retrieve is not None:
                candidates = list(retrieve(q.question, 3 * max(ks)))
            else:
                pool = [c for c in by_article[q.title] if c.document_id != q.document_id]
                picked = rng.sample(pool, min(len(pool), 3 * max(ks)))
                candidates = [ScoredChunk(c, 0.0) for c in picked]
            out += _question_examples(
                builder,
                q.question,
                answers=q.answers,
                document_id=q.document_id,
                gold=ScoredChunk(gold, 1.0),
                candidates=candidates,
                k=k,
                refuse=rng.random() < refusal,
                rng=rng,
            )
        if progress is not None:
            progress("examples", done, len(todo))
    return out


def pair_examples(
    path: str | Path,
    builder: PromptBuilder,
    retrieve: Retrieve,
    *,
    ks: Sequence[int] = (1, 4),
    refusal: float = 0.3,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[GeneratorExample]:
    """RAFT examples from a JSONL of ``{"question", "answer", "source"}`` against a kb.

    The answering passage is a chunk of ``source`` holding ``answer`` among the
    retrieved ones (also searched with a ``{"source": source}`` filter when the plain
    retrieval missed it); refusal examples retrieve with ``source`` filtered out.
    Lines whose answer is in no chunk of their source are skipped.
    """
    _check(ks, refusal)
    rng = random.Random(seed)
    rows = [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
    out: list[GeneratorExample] = []
    for done, row in enumerate(rows, 1):
        try:
            question, answers, source = (
                str(row["question"]),
                (str(row["answer"]),),
                str(row["source"]),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{path}: line {done} needs question, answer and source: {row!r}"
            ) from exc
        k = rng.choice(list(ks))
        candidates = list(retrieve(question, 3 * max(ks)))
        own = [h for h in candidates if h.chunk.source == source] or list(
            retrieve(question, 3 * max(ks), {"source": source})
        )
        gold = _gold_chunk([h.chunk for h in own], answers)
        if gold is not None:
            document_id = gold.document_id
            refuse = rng.random() < refusal
            out += _question_examples(
                builder,
                question,
                answers=answers,
                document_id=document_id,
                gold=ScoredChunk(gold, 1.0),
                candidates=candidates,
                k=k,
                refuse=False,
                rng=rng,
            )
            if refuse:
                others = list(retrieve(question, k, {"source": {"$ne": source}}))
                refusal_example = make_example(
                    builder, question, _without(others, answers, document_id), answers, gold=None
                )
                if refusal_example is not None:
                    out.append(refusal_example)
        if progress is not None:
            progress("examples", done, len(rows))
    return out


def write_examples(examples: Iterable[GeneratorExample], path: str | Path) -> int:
    """Write examples as JSONL; returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_examples(path: str | Path) -> list[GeneratorExample]:
    """Examples written by :func:`write_examples` (``prompt`` and ``completion`` needed)."""
    out: list[GeneratorExample] = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            out.append(
                GeneratorExample(
                    question=str(row.get("question", "")),
                    prompt=str(row["prompt"]),
                    completion=str(row["completion"]),
                    refusal=bool(row.get("refusal", False)),
                    contexts=tuple(row.get("contexts", ())),
                    document_id=row.get("document_id"),
                )
            )
        except KeyError as exc:
            raise ConfigurationError(f"{path}: line {number} has no {exc.args[0]!r}") from exc
    return out
