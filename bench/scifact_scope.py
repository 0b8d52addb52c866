"""What BM25 scores for a chunk on SciFact (train): its text, its document, or the rule.

Chooses ``KeywordIndex(scope="auto", max_document_chunks=T)``: documents of at most
``T`` chunks are scored whole, longer ones chunk by chunk. Measured on the train split
only (nDCG@10, a document scoring as its best chunk, 300 chunks per query as
``ragkit eval beir`` retrieves), for BM25 alone and for hybrid retrieval (the dense
side from the kb's Chroma store, fused as ``HybridRetriever`` fuses at ``k=300``), on:

* SciFact as it is (5,183 abstracts of 1-15 chunks);
* a long-document remix (``--long``): every other abstract (in id order) is glued into
  long documents of 40 abstracts (about 140 chunks each, no title metadata), the rest
  stay alone. Relevance still belongs to the abstract a chunk came from, so the remix
  asks whether a rule that helps short documents harms a corpus with long ones.

    python bench/scifact_scope.py --data ../shared/bench/scifact --kb /tmp/scifact-kb
    python bench/scifact_scope.py --data ../shared/bench/scifact --kb /tmp/scifact-kb --long

The kb must hold SciFact already (``ragkit eval beir ... --kb``); nothing is embedded
except the queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ragkit import RAG
from ragkit.eval import BeirDataset
from ragkit.eval.metrics import evaluate_run
from ragkit.eval.runner import document_scores
from ragkit.retrieval import KeywordIndex
from ragkit.retrieval.fusion import normalized_score_fusion
from ragkit.types import Chunk, ScoredChunk

DEPTH = 300  # chunks per query, as `ragkit eval beir` (3 x 100 documents)
Runs = dict[str, list[ScoredChunk]]


def remix(chunks: Sequence[Chunk], group: int = 40) -> tuple[list[Chunk], dict[str, str]]:
    """Every other abstract merged into long documents; chunk id -> original abstract."""
    abstracts = sorted({c.document_id for c in chunks})
    merged = {d: f"long-{j // (2 * group)}" for j, d in enumerate(abstracts) if j % 2 == 0}
    out = [
        dataclasses.replace(c, document_id=merged[c.document_id], metadata={})
        if c.document_id in merged
        else c
        for c in chunks
    ]
    return out, {c.id: c.document_id for c in chunks}


def ndcg(runs: Runs, qrels: dict[str, dict[str, int]], origin: dict[str, str]) -> dict[str, float]:
    """Per-query nDCG@10, a document scoring as its best chunk (as ``ragkit eval beir``)."""
    scored = {
        q: document_scores(
            [ScoredChunk(dataclasses.replace(h.chunk, document_id=origin[h.chunk.id]), h.score)
             for h in hits],
            100,
        )
        for q, hits in runs.items()
    }  # fmt: skip
    result = evaluate_run({q: qrels[q] for q in runs}, scored, ["ndcg@10"])
    return {q: m["ndcg@10"] for q, m in result.per_query.items()}


def paired(a: dict[str, float], b: dict[str, float]) -> str:
    """Mean per-query difference a - b with a 95% normal interval."""
    diffs = [a[q] - b[q] for q in a]
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return f"{statistics.fmean(diffs):+.4f} ± {half:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--kb", type=Path, required=True, help="kb folder holding SciFact")
    parser.add_argument("--long", action="store_true", help="the long-document remix")
    parser.add_argument("--thresholds", default="3,4,5,6,7,8,10,12")
    args = parser.parse_args(argv)
    queries, qrels = BeirDataset(args.data).split("train")  # choose on train, never test
    queries = {q: t for q, t in queries.items() if any(g >= 1 for g in qrels[q].values())}

    with RAG(args.kb, retrieval="dense") as rag:
        chunks = rag.store.get(rag.store.ids())
        began = time.perf_counter()
        dense = {q: rag.retrieve(text, DEPTH) for q, text in queries.items()}
    print(f"{len(queries)} train queries, {len(chunks)} chunks; dense search "
          f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    origin = {c.id: c.document_id for c in chunks}
    if args.long:
        chunks, origin = remix(chunks)
        print(f"long-document remix: {len({c.document_id for c in chunks})} documents")

    settings: dict[str, dict[str, object]] = {
        "chunk": {"scope": "chunk"},
        "document": {"scope": "document"},
    }
    for t in map(int, args.thresholds.split(",")):
        settings[f"auto, T={t}"] = {"scope": "auto", "max_document_chunks": t}
    base: tuple[dict[str, float], dict[str, float]] | None = None
    print(f"{'BM25 scope':18s} {'BM25':>7s} {'vs chunk':>16s} {'hybrid':>7s} {'vs chunk':>16s}")
    for name, options in settings.items():
        index = KeywordIndex(**options)  # type: ignore[arg-type]
        index.upsert(chunks)
        keyword = {q: index.search(text, DEPTH) for q, text in queries.items()}
        hybrid = {
            q: normalized_score_fusion([dense[q], keyword[q]], weights=(0.5, 0.5), limit=DEPTH)
            for q in queries
        }
        bm25, fused = ndcg(keyword, qrels, origin), ndcg(hybrid, qrels, origin)
        base = base or (bm25, fused)
        print(
            f"{name:18s} {statistics.fmean(bm25.values()):7.4f} {paired(bm25, base[0]):>16s} "
            f"{statistics.fmean(fused.values()):7.4f} {paired(fused, base[1]):>16s}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
