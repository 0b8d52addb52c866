"""Answer evaluation on SQuAD-format question sets (v1.1 and v2.0).

Every paragraph (``context``) of the file becomes one :class:`~ragkit.types.Document`;
every question is asked against the whole index (open-domain QA, not reading
comprehension), and the answer is scored on what a user of a RAG system cares about:

* **retrieval** — is the paragraph the question was written on among the best 1 and
  ``k`` retrieved paragraphs?
* **citations** — does each citation point at the gold paragraph, or at a chunk that
  holds a gold answer?
* **answer** — does the answer contain a gold answer (after SQuAD normalization), and
  the official SQuAD exact match and token F1 (max over the gold answers);
* **refusal** — how often answerable questions are refused (false refusals) and, for
  SQuAD v2 questions marked ``is_impossible``, how often they are rightly refused.

Example::

    from ragkit import RAG
    from ragkit.eval import SquadDataset, evaluate_answers

    data = SquadDataset("../shared/bench/squad/dev-v1.1-articles-00-23.json")
    rag = RAG("/tmp/squad/kb")
    rag.add(data.documents())
    report = evaluate_answers(rag, data.questions(), k=5, sample=1000, seed=0)
    print(report)

From a shell: ``ragkit eval squad ../shared/bench/squad/ --kb /tmp/squad/kb``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ragkit.errors import ConfigurationError
from ragkit.eval._squad_data import SquadDataset, SquadQuestion, read_squad
from ragkit.eval._squad_metric import (
    answer_text,
    contains_answer,
    exact_match,
    f1_score,
    normalize_answer,
)
from ragkit.eval._squad_report import AnswerReport, QuestionResult
from ragkit.eval.runner import document_scores, percentile
from ragkit.protocols import Filters
from ragkit.types import Answer, ScoredChunk

__all__ = [
    "AnswerReport",
    "QuestionResult",
    "SquadDataset",
    "SquadQuestion",
    "answer_text",
    "contains_answer",
    "evaluate_answers",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "read_squad",
    "sample_questions",
]

logger = logging.getLogger(__name__)

#: Called after each question with (question id, questions done so far).
Progress = Callable[[str, int], None]


class Answerer(Protocol):
    """What :func:`evaluate_answers` needs: a :class:`~ragkit.RAG` has both methods."""

    def retrieve(
        self, query: str, k: int | None = None, filters: Filters | None = None
    ) -> list[ScoredChunk]: ...

    def ask(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> Answer: ...


def sample_questions(
    questions: Sequence[SquadQuestion], sample: int | None, seed: int = 0
) -> list[SquadQuestion]:
    """A seeded random sample of ``sample`` questions, kept in file order (all if None)."""
    if sample is None or sample >= len(questions):
        return list(questions)
    if sample <= 0:
        raise ConfigurationError(f"sample must be positive, got {sample}")
    chosen = sorted(random.Random(seed).sample(range(len(questions)), sample))
    return [questions[i] for i in chosen]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate_answers(
    rag: Answerer,
    questions: Sequence[SquadQuestion],
    *,
    k: int = 5,
    sample: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> AnswerReport:
    """Ask every question (or a seeded sample) and score the answers.

    Each question is first retrieved alone (``3 * k`` chunks, paragraphs ranked by their
    best chunk, as in :func:`~ragkit.eval.runner.evaluate_retrieval`) to place the gold
    paragraph, then asked with ``k`` chunks; only ``ask`` is timed.

    Args:
        rag: a :class:`~ragkit.RAG` (or anything with its ``retrieve`` and ``ask``) over
            the documents of :meth:`SquadDataset.documents`.
        questions: the questions (see :meth:`SquadDataset.questions`).
        k: chunks per answer, and paragraphs ranked for ``gold_top_k``.
        sample: ask only a random sample of this many questions.
        seed: seed of that sample.
        progress: called after each question with its id and the count so far.

    Raises:
        ConfigurationError: ``k`` or ``sample`` is not positive.
    """
    if k <= 0:
        raise ConfigurationError(f"k must be positive, got {k}")
    todo = sample_questions(questions, sample, seed)
    results: list[QuestionResult] = []
    for done, q in enumerate(todo, 1):
        # Ask first, so the timed call pays for everything a user's first ask would
        # (query embedding, a reranker's model calls), not the ranking call below.
        began = time.perf_counter()
        answer = rag.ask(q.question, k)
        seconds = time.perf_counter() - began
        ranking = list(document_scores(rag.retrieve(q.question, 3 * k), k))
        gold_rank = ranking.index(q.document_id) + 1 if q.document_id in ranking else 0
        chunks = {hit.chunk.id: hit.chunk for hit in answer.contexts}
        correct = 0
        for citation in answer.citations:
            chunk = chunks.get(citation.chunk_id)
            text = chunk.text if chunk is not None else citation.quote
            document = chunk.document_id if chunk is not None else None
            if document == q.document_id or contains_answer(text, q.answers):
                correct += 1
        plain = "" if answer.refused else answer_text(answer)
        results.append(
            QuestionResult(
                id=q.id,
                impossible=q.is_impossible,
                gold_rank=gold_rank,
                refused=answer.refused,
                contains_gold=bool(plain) and contains_answer(plain, q.answers),
                exact_match=exact_match(plain, q.answers) if plain else 0.0,
                f1=f1_score(plain, q.answers) if plain else 0.0,
                citations=len(answer.citations),
                correct_citations=correct,
                seconds=seconds,
                answer=answer.text,
            )
        )
        logger.debug("question %s: gold rank %d, refused %s", q.id, gold_rank, answer.refused)
        if progress is not None:
            progress(q.id, done)

    answerable = [r for r in results if not r.impossible]
    impossible = [r for r in results if r.impossible]
    cited = sum(r.citations for r in answerable)
    latencies = [r.seconds for r in results]
    return AnswerReport(
        questions=len(results),
        answerable=len(answerable),
        impossible=len(impossible),
        k=k,
        sample=sample,
        seed=seed,
        gold_top1=_mean([float(r.gold_rank == 1) for r in answerable]),
        gold_top_k=_mean([float(r.gold_rank >= 1) for r in answerable]),
        citation_precision=sum(r.correct_citations for r in answerable) / cited if cited else 0.0,
        citations=cited,
        answer_contains_gold=_mean([float(r.contains_gold) for r in answerable]),
        exact_match=_mean([r.exact_match for r in answerable]),
        f1=_mean([r.f1 for r in answerable]),
        refusal_rate=_mean([float(r.refused) for r in answerable]),
        impossible_refusal_rate=(
            _mean([float(r.refused) for r in impossible]) if impossible else None
        ),
        seconds=sum(latencies),
        latency_mean_ms=_mean(latencies) * 1000,
        latency_p50_ms=percentile(latencies, 50) * 1000,
        latency_p95_ms=percentile(latencies, 95) * 1000,
        per_question=tuple(results),
    )
