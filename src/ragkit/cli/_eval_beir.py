"""``ragkit eval beir``: index a BEIR corpus, score the split's queries, print a table."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ragkit.backends.urls import redact
from ragkit.cli._eval_common import (
    index_documents,
    load_config,
    rag_options,
    table,
    write_results,
)

if TYPE_CHECKING:
    from ragkit.eval import RetrievalReport

__all__ = ["add_beir_parser", "format_table", "run_beir"]

# The order of the table; measures not listed here follow in report order.
_LABELS = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR", "map": "MAP"}


def add_beir_parser(benchmarks: Any) -> None:
    """Add ``beir`` and its options to the ``eval`` benchmark parser ``benchmarks``."""
    beir = benchmarks.add_parser(
        "beir",
        help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
        description="Index a BEIR corpus, run the split's queries, report nDCG@10, "
        "recall@10/@k, MRR@10, MAP@10 and latency.",
    )
    beir.add_argument("path", help="the BEIR dataset folder")
    beir.add_argument("--split", default="test", help="qrels split to score (default test)")
    beir.add_argument(
        "--kb",
        help="knowledge-base folder or postgresql:// / milvus:// URL to index into and reuse "
        "(default: in memory)",
    )
    beir.add_argument(
        "--config", help='JSON or TOML file of RAG settings, e.g. {"chunk_size": 160}'
    )
    beir.add_argument(
        "--retrieval",
        choices=("dense", "keyword", "hybrid"),
        help="retrieval method (overrides the config file)",
    )
    beir.add_argument("--k", type=int, default=100, help="documents ranked per query (100)")
    beir.add_argument("--chunk-k", type=int, help="chunks retrieved per query (default 3 x --k)")
    beir.add_argument("--limit", type=int, help="score only the first N queries of the split")
    beir.add_argument(
        "--output", help="where to write the JSON results (default eval-<dataset>-<split>.json)"
    )


def _label(measure: str) -> str:
    name, _, cutoff = measure.partition("@")
    return f"{_LABELS.get(name, name)}@{cutoff}"


def format_table(report: RetrievalReport) -> str:
    """The metrics and speed of ``report`` as an aligned two-column table."""
    rows = [(_label(m), f"{v:.4f}") for m, v in report.metrics.items()]
    rows += [
        ("queries/s", f"{report.queries_per_second:.1f}"),
        ("latency p50", f"{report.latency_p50_ms:.1f} ms"),
        ("latency p95", f"{report.latency_p95_ms:.1f} ms"),
    ]
    return table(rows)


def run_beir(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ragkit
    from ragkit.errors import ConfigurationError
    from ragkit.eval import BeirDataset, evaluate_retrieval
    from ragkit.rag import RAG

    if args.k <= 0 or (args.chunk_k is not None and args.chunk_k <= 0):
        raise ConfigurationError("--k and --chunk-k must be positive")
    if args.limit is not None and args.limit <= 0:
        raise ConfigurationError("--limit must be positive")
    dataset = BeirDataset(args.path)
    queries, qrels = dataset.split(args.split)
    if args.limit is not None:
        queries = dict(list(queries.items())[: args.limit])
    config = load_config(args.config) if args.config else {}
    options = rag_options(config, args.retrieval)

    with RAG(args.kb, **options) as rag:
        index = index_documents(rag, dataset.corpus())
        index["chunks"] = rag.store.count()
        if index["failed"]:
            print(
                f"ragkit: warning: {len(index['failed'])} documents were not indexed, e.g. "
                f"{index['failed'][0]['source']}: {index['failed'][0]['reason']}",
                file=sys.stderr,
            )
        bar = tqdm(total=len(queries), desc="querying", unit=" q", file=sys.stderr, disable=None)
        report = evaluate_retrieval(
            rag,
            queries,
            qrels,
            k=args.k,
            chunk_k=args.chunk_k,
            progress=lambda _query, _done: bar.update(1),
        )
        bar.close()
        embedder, store = rag.embedder.model_id, rag.store_name
        retrieval = getattr(rag, "retrieval", "dense")  # RAG before hybrid retrieval: dense

    settings = {**config, **({"retrieval": args.retrieval} if args.retrieval else {})}
    results = {
        "benchmark": "beir",
        "dataset": dataset.name,
        "path": str(dataset.path),
        "split": args.split,
        "ragkit_version": ragkit.__version__,
        "config": settings,
        "embedder": embedder,
        "store": store,
        "retrieval_method": retrieval,
        "kb": redact(str(args.kb)) if args.kb else None,
        "index": index,
        "retrieval": report.to_dict(),
    }
    output = write_results(args.output or f"eval-{dataset.name}-{args.split}.json", results)

    setup = [embedder, f"{store} store", f"{retrieval} retrieval"]
    setup += [f"{key}={value}" for key, value in settings.items() if key != "retrieval"]
    print(
        f"{dataset.name} ({args.split}): {report.queries} queries, {index['documents']} "
        f"documents, {index['chunks']} chunks"
    )
    print(", ".join(setup))
    print(format_table(report))
    print(f"results: {os.fspath(output)}")
    return 0
