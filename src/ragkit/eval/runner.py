"""Run queries through a retriever and score what comes back."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragkit.errors import ConfigurationError
from ragkit.eval.metrics import Qrels, evaluate_run, rank
from ragkit.protocols import Retriever
from ragkit.types import ScoredChunk

__all__ = ["RetrievalReport", "document_scores", "evaluate_retrieval", "percentile"]

logger = logging.getLogger(__name__)

#: Called after each query with (query id, queries done so far).
Progress = Callable[[str, int], None]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as ``numpy.percentile``.

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def document_scores(hits: Iterable[ScoredChunk], k: int | None = None) -> dict[str, float]:
    """Document id -> the best score among its chunks; the ``k`` best documents.

    A document is as relevant as its most relevant passage (BEIR's MaxP). The cut at
    ``k`` uses the metrics' order (score, then id, both descending).

    Example:
        >>> from ragkit.types import Chunk
        >>> def hit(doc, score):
        ...     return ScoredChunk(Chunk(f"{doc}{score}", "t", doc, "s", 0, 1), score)
        >>> document_scores([hit("a", 0.9), hit("b", 0.8), hit("a", 0.7)])
        {'a': 0.9, 'b': 0.8}
    """
    best: dict[str, float] = {}
    for hit in hits:
        doc = hit.chunk.document_id
        score = float(hit.score)
        if doc not in best or score > best[doc]:
            best[doc] = score
    if k is not None and len(best) > k:
        best = {doc: best[doc] for doc in rank(best)[:k]}
    return best


@dataclass(frozen=True, slots=True)
class RetrievalReport:
    """How well and how fast a retriever ranked the documents of a benchmark.

    Example:
        >>> report = evaluate_retrieval(rag, queries, qrels)  # doctest: +SKIP
        >>> report.metrics["ndcg@10"]  # doctest: +SKIP
        0.6451

    Attributes:
        metrics: measure (``"ndcg@10"``, ``"recall@100"``, ...) -> mean over queries.
        queries: number of queries evaluated.
        skipped: queries given but left out: no relevant document in the qrels.
        k: documents ranked per query.
        chunk_k: chunks retrieved per query, from which the documents were ranked.
        mean_documents: documents ranked per query, on average (below ``k`` when the
            ``chunk_k`` chunks came from fewer documents).
        seconds: wall time spent in retrieval, all queries.
        queries_per_second: ``queries / seconds``, one query at a time.
        latency_p50_ms: median time of one query, in milliseconds.
        latency_p95_ms: 95th percentile of the time of one query.
        per_query: query id -> measure -> value.
    """

    metrics: Mapping[str, float]
    queries: int
    skipped: int
    k: int
    chunk_k: int
    mean_documents: float
    seconds: float
    queries_per_second: float
    latency_p50_ms: float
    latency_p95_ms: float
    per_query: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``json.dumps(report.to_dict())`` works)."""
        data = asdict(self)
        data["metrics"] = dict(self.metrics)
        data["per_query"] = {q: dict(m) for q, m in self.per_query.items()}
        return data

    def __str__(self) -> str:
        metrics = ", ".join(f"{name} {value:.4f}" for name, value in self.metrics.items())
        return (
            f"{self.queries} queries: {metrics}; {self.queries_per_second:.1f} queries/s, "
            f"p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms"
        )


def evaluate_retrieval(
    retriever: Retriever,
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    k: int = 100,
    chunk_k: int | None = None,
    measures: Iterable[str] | None = None,
    ignore_identical_ids: bool = True,
    progress: Progress | None = None,
) -> RetrievalReport:
    """Ask every query, rank documents by their best chunk, score the ranking.

    Each query retrieves ``chunk_k`` chunks, one at a time (so the latencies are those
    a user would see); a document's score is the best score of its chunks
    (:func:`document_scores`), and the ``k`` best documents form the run that
    :func:`ragkit.eval.metrics.evaluate_run` scores against ``qrels``.

    Example:
        >>> from ragkit import RAG
        >>> from ragkit.eval import BeirDataset, evaluate_retrieval
        >>> data = BeirDataset("../shared/bench/scifact")  # doctest: +SKIP
        >>> rag = RAG(store="memory")  # doctest: +SKIP
        >>> rag.add(list(data.corpus()))  # doctest: +SKIP
        >>> print(evaluate_retrieval(rag, *data.split("test")))  # doctest: +SKIP

    Args:
        retriever: a :class:`~ragkit.RAG` or any :class:`~ragkit.protocols.Retriever`
            over chunks whose ``document_id`` is the qrels' document id.
        queries: query id -> text; only queries with a relevant document in ``qrels``
            are run.
        qrels: query id -> document id -> grade.
        k: documents ranked per query.
        chunk_k: chunks retrieved per query; default ``3 * k``, so that documents cut
            into several chunks still leave about ``k`` distinct documents.
        measures: ``name@k`` strings (see :func:`~ragkit.eval.metrics.evaluate_run`);
            default nDCG@10, recall@10, recall@``k``, MRR@10 and MAP@10.
        ignore_identical_ids: drop a document whose id equals the query's id, as BEIR
            does (it matters for ArguAna and Quora, where queries are also documents).
        progress: called after each query with its id and the count so far.

    Raises:
        ConfigurationError: ``k`` or ``chunk_k`` is not positive, or a measure is unknown.
    """
    if k <= 0:
        raise ConfigurationError(f"k must be positive, got {k}")
    chunk_k = 3 * k if chunk_k is None else chunk_k
    if chunk_k <= 0:
        raise ConfigurationError(f"chunk_k must be positive, got {chunk_k}")
    if measures is None:
        measures = ("ndcg@10", "recall@10", f"recall@{k}", "mrr@10", "map@10")
    measures = list(dict.fromkeys(measures))

    todo = {
        query_id: text
        for query_id, text in queries.items()
        if any(grade >= 1 for grade in qrels.get(query_id, {}).values())
    }
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for done, (query_id, text) in enumerate(todo.items(), 1):
        began = time.perf_counter()
        hits = retriever.retrieve(text, chunk_k)
        latencies.append(time.perf_counter() - began)
        if ignore_identical_ids:
            hits = [h for h in hits if h.chunk.document_id != query_id]
        run[query_id] = document_scores(hits, k)
        logger.debug("query %s: %d chunks, %d documents", query_id, len(hits), len(run[query_id]))
        if progress is not None:
            progress(query_id, done)

    scored = evaluate_run({q: qrels[q] for q in todo}, run, measures)
    seconds = sum(latencies)
    n = len(todo)
    return RetrievalReport(
        metrics=dict(scored.mean),
        queries=n,
        skipped=len(queries) - n,
        k=k,
        chunk_k=chunk_k,
        mean_documents=sum(len(r) for r in run.values()) / n if n else 0.0,
        seconds=seconds,
        queries_per_second=n / seconds if seconds > 0 else 0.0,
        latency_p50_ms=percentile(latencies, 50) * 1000,
        latency_p95_ms=percentile(latencies, 95) * 1000,
        per_query={q: dict(m) for q, m in scored.per_query.items()},
    )
