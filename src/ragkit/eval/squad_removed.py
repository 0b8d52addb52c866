"""Refusal when the answering passage is removed (RAFT's test of a fine-tuned generator).

Each question is asked with its own paragraph filtered out of the index
(``{"source": {"$ne": "squad:<title>/<i>"}}``): what is retrieved is the nearest other
passages, mostly of the same article. The right answer is the refusal, unless another
passage given to the generator also holds a gold answer; those questions are counted
apart (``answerable_elsewhere``) and left out of the rate.

Example:
    >>> report = evaluate_removed(rag, data.questions(), k=4, sample=100)  # doctest: +SKIP
    >>> report.refusal_rate  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragkit.errors import ConfigurationError
from ragkit.eval._squad_data import SquadQuestion
from ragkit.eval._squad_metric import answer_text, contains_answer
from ragkit.eval.squad import Answerer, sample_questions

__all__ = ["RemovedReport", "evaluate_removed"]


@dataclass(frozen=True, slots=True)
class RemovedReport:
    """How often the answer was refused with the answering passage removed.

    Attributes:
        questions: questions asked.
        k: chunks given to the generator.
        answerable_elsewhere: questions where a passage given still held a gold answer
            (not counted in the rate).
        refused: refused among the others.
        refusal_rate: ``refused / (questions - answerable_elsewhere)``.
        answered_with_gold: answers (not refused) that still contained a gold answer,
            among the others (the model knew it, or guessed).
        per_question: (question id, refused, answerable elsewhere, answer text).
    """

    questions: int
    k: int
    answerable_elsewhere: int
    refused: int
    refusal_rate: float
    answered_with_gold: int
    per_question: tuple[tuple[str, bool, bool, str], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_question"] = [list(row) for row in self.per_question]
        return out


def evaluate_removed(
    rag: Answerer,
    questions: Sequence[SquadQuestion],
    *,
    k: int = 4,
    sample: int | None = None,
    seed: int = 0,
    progress: Callable[[str, int], None] | None = None,
) -> RemovedReport:
    """Ask each question (or a seeded sample, as :func:`evaluate_answers` draws it)
    without its own paragraph; see the module docstring."""
    if k <= 0:
        raise ConfigurationError(f"k must be positive, got {k}")
    rows: list[tuple[str, bool, bool, str]] = []
    elsewhere = refused = with_gold = 0
    for done, q in enumerate(sample_questions(questions, sample, seed), 1):
        answer = rag.ask(q.question, k, {"source": {"$ne": f"squad:{q.document_id}"}})
        holds = any(contains_answer(hit.chunk.text, q.answers) for hit in answer.contexts)
        if holds:
            elsewhere += 1
        elif answer.refused:
            refused += 1
        elif contains_answer(answer_text(answer), q.answers):
            with_gold += 1
        rows.append((q.id, answer.refused, holds, answer.text))
        if progress is not None:
            progress(q.id, done)
    counted = len(rows) - elsewhere
    return RemovedReport(
        questions=len(rows),
        k=k,
        answerable_elsewhere=elsewhere,
        refused=refused,
        refusal_rate=refused / counted if counted else 0.0,
        answered_with_gold=with_gold,
        per_question=tuple(rows),
    )
