"""Evaluation: benchmark data, metrics, and runners that score a pipeline on them.

* :mod:`ragkit.eval.metrics` — nDCG, recall, MRR and MAP at a cutoff, with trec_eval's
  definitions (and its order for tied scores), per query and averaged.
* :mod:`ragkit.eval.beir` — read a BEIR folder (corpus, queries, qrels per split).
* :mod:`ragkit.eval.runner` — run the queries through any retriever (or a ``RAG``),
  rank documents by their best chunk, report metrics and latency.

Example::

    from ragkit import RAG
    from ragkit.eval import BeirDataset, evaluate_retrieval

    data = BeirDataset("../shared/bench/scifact")
    rag = RAG(store="memory")
    rag.add(list(data.corpus()))
    queries, qrels = data.split("test")
    report = evaluate_retrieval(rag, queries, qrels, k=100)
    print(report.metrics["ndcg@10"], report.latency_p95_ms)

From a shell: ``ragkit eval beir ../shared/bench/scifact --split test``.

* :mod:`ragkit.eval.squad` — answer evaluation on SQuAD files: gold paragraph in the
  top 1 and ``k``, citation precision, answer-contains-gold, official EM/F1, refusal
  rates (``ragkit eval squad ../shared/bench/squad``).
"""

from ragkit.eval.beir import BeirDataset, beir_document, read_corpus, read_qrels, read_queries
from ragkit.eval.metrics import (
    DEFAULT_MEASURES,
    Qrels,
    Run,
    RunEvaluation,
    evaluate_run,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    rank,
    recall_at_k,
)
from ragkit.eval.runner import RetrievalReport, document_scores, evaluate_retrieval
from ragkit.eval.squad import (
    AnswerReport,
    QuestionResult,
    SquadDataset,
    SquadQuestion,
    contains_answer,
    evaluate_answers,
    exact_match,
    f1_score,
    normalize_answer,
    read_squad,
)

__all__ = [
    "DEFAULT_MEASURES",
    "BeirDataset",
    "Qrels",
    "RetrievalReport",
    "Run",
    "RunEvaluation",
    "beir_document",
    "document_scores",
    "evaluate_retrieval",
    "evaluate_run",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "rank",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "recall_at_k",
]

# SQuAD answer evaluation (appended: see ragkit.eval.squad).
__all__ += [
    "AnswerReport",
    "QuestionResult",
    "SquadDataset",
    "SquadQuestion",
    "contains_answer",
    "evaluate_answers",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "read_squad",
]
