"""Ranking metrics with trec_eval's (and so pytrec_eval's and BEIR's) definitions.

A *run* gives each query a score per document (higher is better); *qrels* give each
query a relevance grade per judged document. The metrics follow ``trec_eval`` 9.x:

* **Order.** Documents are ranked by score, highest first; equal scores are ordered by
  document id, *descending* (trec_eval sorts by ``(score, docno)`` in reverse). So a
  run with ties gets the same numbers here as in pytrec_eval.
* **Relevance.** A document is relevant when its grade is 1 or more; grade 0, negative
  grades and unjudged documents are not relevant.
* **Gain.** nDCG uses the grade itself as the gain (linear, not ``2**grade - 1``) and
  ``1 / log2(rank + 1)`` as the discount; grades of 0 or less add nothing.

Per-query functions return 0.0 for a query without relevant documents, as trec_eval
does; :func:`evaluate_run` leaves such queries out of the mean, as BEIR's test sets do
(they have no such queries).

Example:
    >>> relevance = {"d1": 2, "d2": 1, "d3": 0}
    >>> scores = {"d1": 0.9, "d3": 0.8, "d2": 0.7}
    >>> round(mrr_at_k(relevance, scores, k=10), 4)
    1.0
    >>> round(recall_at_k(relevance, scores, k=1), 4)
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ragkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_MEASURES",
    "Qrels",
    "Run",
    "RunEvaluation",
    "evaluate_run",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "rank",
    "recall_at_k",
]

#: Query id -> document id -> relevance grade (BEIR ``qrels/*.tsv``).
Qrels = Mapping[str, Mapping[str, int]]

#: Query id -> document id -> score, higher is better.
Run = Mapping[str, Mapping[str, float]]

#: What :func:`evaluate_run` computes unless told otherwise: the BEIR headline numbers.
DEFAULT_MEASURES = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@10")


def rank(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first, in trec_eval's order: score descending, then id descending.

    Example:
        >>> rank({"a": 0.5, "b": 0.5, "c": 0.9})
        ['c', 'b', 'a']
    """
    return sorted(scores, key=lambda doc: (scores[doc], doc), reverse=True)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigurationError(f"k must be a positive integer, got {k!r}")


def _relevant(relevance: Mapping[str, int]) -> set[str]:
    return {doc for doc, grade in relevance.items() if grade >= 1}


def ndcg_at_k(relevance: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """Normalized discounted cumulative gain of the top ``k`` (trec_eval ``ndcg_cut.k``).

    ``DCG@k = sum(grade(d_i) / log2(i + 1) for i = 1..k)`` over the ranked documents,
    divided by the same sum for the ideal ranking: every judged grade, sorted high to
    low, cut at ``k``.

    Args:
        relevance: document id -> grade, for one query.
        scores: document id -> score, for the same query.
        k: the cutoff.
    """
    _check_k(k)
    ideal_gains = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    if ideal == 0.0:
        return 0.0
    dcg = 0.0
    for i, doc in enumerate(rank(scores)[:k]):
        gain = relevance.get(doc, 0)
        if gain > 0:
            dcg += gain / math.log2(i + 2)
    return dcg / ideal


def recall_at_k(relevance: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """Share of the relevant documents found in the top ``k`` (trec_eval ``recall.k``)."""
    _check_k(k)
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    return sum(1 for doc in rank(scores)[:k] if doc in relevant) / len(relevant)


def mrr_at_k(relevance: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document in the top ``k``; 0 if there is none.

    trec_eval's ``recip_rank`` on the run cut at ``k`` (pytrec_eval has no cut version;
    BEIR computes it itself); averaged over queries it is MRR@k.
    """
    _check_k(k)
    relevant = _relevant(relevance)
    for i, doc in enumerate(rank(scores)[:k]):
        if doc in relevant:
            return 1.0 / (i + 1)
    return 0.0


def map_at_k(relevance: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """Average precision cut at ``k`` (trec_eval ``map_cut.k``).

    The sum of the precision at the rank of each relevant document in the top ``k``,
    divided by the number of relevant documents *in the qrels* (not by ``min(k, R)``):
    a query with 20 relevant documents scores at most 0.5 at ``k = 10``.
    """
    _check_k(k)
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    found = 0
    total = 0.0
    for i, doc in enumerate(rank(scores)[:k]):
        if doc in relevant:
            found += 1
            total += found / (i + 1)
    return total / len(relevant)


Metric = Callable[[Mapping[str, int], Mapping[str, float], int], float]

_METRICS: dict[str, Metric] = {
    "map": map_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
}


def _parse(measure: str) -> tuple[Metric, int]:
    name, sep, cutoff = measure.partition("@")
    metric = _METRICS.get(name)
    if metric is None or not sep or not cutoff.isdigit() or int(cutoff) <= 0:
        raise ConfigurationError(
            f"unknown measure {measure!r}; write name@k with name one of "
            f"{', '.join(sorted(_METRICS))}, e.g. 'ndcg@10'"
        )
    return metric, int(cutoff)


@dataclass(frozen=True, slots=True)
class RunEvaluation:
    """Metrics of one run against qrels.

    Attributes:
        mean: measure (``"ndcg@10"``) -> mean over the evaluated queries; 0.0 for every
            measure when no query was evaluated.
        per_query: query id -> measure -> value, for every evaluated query.
        skipped: ids of qrels queries left out because none of their documents is
            relevant.
    """

    mean: Mapping[str, float]
    per_query: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def evaluate_run(
    qrels: Qrels, run: Run, measures: Iterable[str] = DEFAULT_MEASURES
) -> RunEvaluation:
    """Score ``run`` against ``qrels``, per query and averaged over queries.

    Every query of ``qrels`` with at least one relevant document is evaluated; a query
    the run does not mention scores 0 (trec_eval's ``-c``). Queries of the run that
    are not in ``qrels`` are ignored.

    Example:
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
        >>> run = {"q1": {"d1": 0.9, "d2": 0.1}, "q2": {"d1": 0.9, "d2": 0.1}}
        >>> evaluate_run(qrels, run, ["mrr@10"]).mean["mrr@10"]
        0.75

    Args:
        qrels: query id -> document id -> grade.
        run: query id -> document id -> score.
        measures: ``name@k`` strings, name one of ``ndcg``, ``recall``, ``mrr``, ``map``.

    Raises:
        ConfigurationError: a measure is not understood.
    """
    names: Sequence[str] = list(dict.fromkeys(measures))
    parsed = [(name, *_parse(name)) for name in names]
    per_query: dict[str, dict[str, float]] = {}
    skipped: list[str] = []
    for query_id, relevance in qrels.items():
        if not _relevant(relevance):
            skipped.append(query_id)
            continue
        scores = run.get(query_id, {})
        per_query[query_id] = {name: metric(relevance, scores, k) for name, metric, k in parsed}
    n = len(per_query)
    mean = {name: (sum(q[name] for q in per_query.values()) / n if n else 0.0) for name in names}
    return RunEvaluation(mean=mean, per_query=per_query, skipped=tuple(skipped))
