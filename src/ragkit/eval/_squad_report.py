"""What a SQuAD answer evaluation reports: per question, and over the question set;
see :mod:`ragkit.eval.squad`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AnswerReport", "QuestionResult"]


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
