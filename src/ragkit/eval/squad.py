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

import json
import logging
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragkit.errors import ConfigurationError, LoaderError
from ragkit.eval.runner import document_scores, percentile
from ragkit.protocols import Filters
from ragkit.types import Answer, Document, ScoredChunk

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

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_MARKERS = re.compile(r"\s*\[\d+\]")


# --- the official SQuAD metric (evaluate-v1.1.py / evaluate-v2.0.py) -----------------


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace.

    The normalization of the official SQuAD evaluation script, step for step.

    Example:
        >>> normalize_answer("The  Denver Broncos!")
        'denver broncos'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _exact(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def _f1(prediction: str, truth: str) -> float:
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(truth).split()
    common = Counter(predicted) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer, else 0.0.

    Example:
        >>> exact_match("the Broncos.", ["Broncos", "Denver Broncos"])
        1.0
    """
    return max((_exact(prediction, a) for a in answers), default=0.0)


def f1_score(prediction: str, answers: Iterable[str]) -> float:
    """The best token F1 of the normalized prediction against any gold answer.

    Example:
        >>> round(f1_score("Denver", ["Denver Broncos"]), 4)
        0.6667
    """
    return max((_f1(prediction, a) for a in answers), default=0.0)


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when a normalized gold answer occurs in the normalized ``text``.

    Matching is on whole words: ``"1"`` is not found in ``"10 years"``.

    Example:
        >>> contains_answer("The game was won by the Denver Broncos [1].", ["Denver Broncos"])
        True
    """
    haystack = f" {normalize_answer(text)} "
    return any((needle := normalize_answer(a)) and f" {needle} " in haystack for a in answers)


def answer_text(answer: Answer) -> str:
    """The answer's text without its ``[n]`` markers (what EM and F1 are computed on)."""
    return _MARKERS.sub("", answer.text).strip()


# --- reading SQuAD files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    """One question of a SQuAD file and where its answers are.

    Attributes:
        id: the question id of the file.
        question: the question text.
        answers: the gold answer texts (empty for an unanswerable question).
        document_id: id of the paragraph the question was written on.
        title: title of that paragraph's article.
        is_impossible: SQuAD v2: the paragraph does not answer the question.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    document_id: str
    title: str
    is_impossible: bool = False


def _paragraph_document(title: str, index: int, context: str) -> Document:
    return Document(
        id=f"{title}/{index}",
        source=f"squad:{title}/{index}",
        text=context,
        metadata={"title": title},
    )


def read_squad(path: str | Path) -> tuple[list[Document], list[SquadQuestion]]:
    """The paragraphs (as documents) and questions of a SQuAD-format JSON file.

    Paragraph ``i`` of the article titled ``T`` becomes the document with id ``T/i``,
    source ``squad:T/i`` and metadata ``{"title": T}``. A paragraph or question with the
    wrong shape is logged and skipped.

    Raises:
        LoaderError: the file cannot be read, or is not SQuAD JSON.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoaderError(str(path), f"cannot be read ({exc.strerror})") from exc
    except ValueError as exc:
        raise LoaderError(str(path), f"is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LoaderError(str(path), 'is not SQuAD JSON (expected {"data": [articles]})')
    documents: list[Document] = []
    questions: list[SquadQuestion] = []
    for number, article in enumerate(data["data"]):
        title = str(article.get("title") or f"article-{number}")
        for index, paragraph in enumerate(article.get("paragraphs") or []):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                logger.warning("%s: %s paragraph %d skipped: no context", path, title, index)
                continue
            document = _paragraph_document(title, index, context)
            documents.append(document)
            for qa in paragraph.get("qas") or []:
                if not isinstance(qa, dict) or not qa.get("question"):
                    logger.warning(
                        "%s: %s/%d: a question without text, skipped", path, title, index
                    )
                    continue
                impossible = bool(qa.get("is_impossible", False))
                answers = tuple(
                    str(a["text"])
                    for a in qa.get("answers") or []
                    if isinstance(a, dict) and a.get("text")
                )
                if not answers and not impossible:
                    logger.warning("%s: question %s has no answer, skipped", path, qa.get("id"))
                    continue
                questions.append(
                    SquadQuestion(
                        id=str(qa.get("id") or f"{document.id}#{len(questions)}"),
                        question=str(qa["question"]),
                        answers=() if impossible else answers,
                        document_id=document.id,
                        title=title,
                        is_impossible=impossible,
                    )
                )
    return documents, questions


@dataclass(frozen=True, slots=True)
class SquadDataset:
    """A SQuAD-format JSON file, or a folder of them (read in name order).

    Example:
        >>> data = SquadDataset("../shared/bench/squad")  # doctest: +SKIP
        >>> rag.add(data.documents())  # doctest: +SKIP
        >>> len(data.questions())  # doctest: +SKIP
        5696

    Attributes:
        path: the file or folder.
        files: the JSON files read.
        name: the dataset name: the file's stem, or the folder's name.
    """

    path: Path
    files: tuple[Path, ...]
    name: str

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        where = Path(path)
        files = (where,) if where.is_file() else tuple(sorted(where.glob("*.json")))
        if not files:
            raise ConfigurationError(
                f"{where} is neither a SQuAD JSON file nor a folder holding one"
            )
        object.__setattr__(self, "path", where)
        object.__setattr__(self, "files", files)
        object.__setattr__(
            self, "name", name or (where.stem if where.is_file() else where.resolve().name)
        )

    def read(self) -> tuple[list[Document], list[SquadQuestion]]:
        """The paragraphs and the questions, read once."""
        documents: list[Document] = []
        questions: list[SquadQuestion] = []
        for file in self.files:
            docs, qs = read_squad(file)
            documents += docs
            questions += qs
        return documents, questions

    def documents(self) -> list[Document]:
        """Every paragraph, as a document, in file order."""
        return self.read()[0]

    def questions(self) -> list[SquadQuestion]:
        """Every question, in file order."""
        return self.read()[1]


# --- running the questions ----------------------------------------------------------------


class Answerer(Protocol):
    """What :func:`evaluate_answers` needs: a :class:`~ragkit.RAG` has both methods."""

    def retrieve(
        self, query: str, k: int | None = None, filters: Filters | None = None
    ) -> list[ScoredChunk]: ...

    def ask(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> Answer: ...


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """How one question went.

    Attributes:
        id: the question id.
        impossible: SQuAD v2 unanswerable question.
        gold_rank: rank (1-based) of the gold paragraph among the retrieved paragraphs,
            or 0 when it was not retrieved.
        refused: the answer was the refusal.
        contains_gold: the answer text contains a gold answer.
        exact_match: official SQuAD EM of the answer text.
        f1: official SQuAD token F1 of the answer text.
        citations: citations of the answer.
        correct_citations: those pointing at the gold paragraph or a chunk holding a
            gold answer.
        seconds: time of ``ask``.
        answer: the answer text (markers kept).
    """

    id: str
    impossible: bool
    gold_rank: int
    refused: bool
    contains_gold: bool
    exact_match: float
    f1: float
    citations: int
    correct_citations: int
    seconds: float
    answer: str


@dataclass(frozen=True, slots=True)
class AnswerReport:
    """Retrieval, citation, answer and refusal quality on a SQuAD question set.

    Rates over answerable questions count a refused question as a wrong answer.

    Example:
        >>> report = evaluate_answers(rag, data.questions(), sample=500)  # doctest: +SKIP
        >>> report.gold_top_k, report.citation_precision  # doctest: +SKIP

    Attributes:
        questions: questions asked.
        answerable: of which answerable.
        impossible: of which unanswerable (SQuAD v2 ``is_impossible``).
        k: chunks given to the generator (and paragraphs ranked for ``gold_top_k``).
        sample: the sample size asked for, or None for every question.
        seed: seed of the sample.
        gold_top1: share of answerable questions whose gold paragraph is retrieved first.
        gold_top_k: share whose gold paragraph is among the ``k`` best paragraphs.
        citation_precision: share of all citations (answerable questions) that point at
            the gold paragraph or at a chunk containing a gold answer.
        citations: number of those citations.
        answer_contains_gold: share of answerable questions whose answer contains a gold
            answer (normalized, whole words).
        exact_match: mean official SQuAD EM over answerable questions.
        f1: mean official SQuAD F1 over answerable questions.
        refusal_rate: share of answerable questions refused (false refusals).
        impossible_refusal_rate: share of unanswerable questions refused, or None when
            there are none.
        seconds: wall time of all ``ask`` calls.
        latency_mean_ms: mean time of one ``ask``.
        latency_p50_ms: median time of one ``ask``.
        latency_p95_ms: 95th percentile.
        per_question: one :class:`QuestionResult` per question.
    """

    questions: int
    answerable: int
    impossible: int
    k: int
    sample: int | None
    seed: int
    gold_top1: float
    gold_top_k: float
    citation_precision: float
    citations: int
    answer_contains_gold: float
    exact_match: float
    f1: float
    refusal_rate: float
    impossible_refusal_rate: float | None
    seconds: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    per_question: tuple[QuestionResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``json.dumps(report.to_dict())`` works)."""
        data = asdict(self)
        data["per_question"] = [asdict(r) for r in self.per_question]
        return data

    def metrics(self) -> dict[str, float]:
        """The headline figures, name -> value (the table ``ragkit eval squad`` prints)."""
        out = {
            "gold paragraph@1": self.gold_top1,
            f"gold paragraph@{self.k}": self.gold_top_k,
            "citation precision": self.citation_precision,
            "answer contains gold": self.answer_contains_gold,
            "exact match": self.exact_match,
            "F1": self.f1,
            "refusal rate (answerable)": self.refusal_rate,
        }
        if self.impossible_refusal_rate is not None:
            out["refusal rate (impossible)"] = self.impossible_refusal_rate
        return out

    def __str__(self) -> str:
        figures = ", ".join(f"{name} {value:.4f}" for name, value in self.metrics().items())
        return (
            f"{self.questions} questions: {figures}; "
            f"mean {self.latency_mean_ms:.0f} ms, p95 {self.latency_p95_ms:.0f} ms per question"
        )


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
        ranking = list(document_scores(rag.retrieve(q.question, 3 * k), k))
        gold_rank = ranking.index(q.document_id) + 1 if q.document_id in ranking else 0
        began = time.perf_counter()
        answer = rag.ask(q.question, k)
        seconds = time.perf_counter() - began
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
