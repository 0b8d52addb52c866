"""Retrieval quality and speed on BEIR SciFact: dense, BM25 and hybrid, by nDCG@10.

Each abstract is one document (``title + "\\n\\n" + text``) indexed by the ``RAG``
pipeline (default chunker, bundled MiniLM); a document scores as its best chunk.

    # tune on train: the RAG defaults, then the BM25 and fusion grids
    python bench/scifact_retrieval.py --data ../shared/bench/scifact --split train \\
        --kb /tmp/scifact-kb --grid
    # report on test, with the chosen defaults only
    python bench/scifact_retrieval.py --data ../shared/bench/scifact --split test \\
        --kb /tmp/scifact-kb

The first run embeds the 5,183 abstracts (several minutes on a laptop CPU); the kb
folder caches the vectors, so later runs only embed the queries.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ragkit import RAG, Document
from ragkit._build import Retrieval
from ragkit.backends.local import sync_keyword_index
from ragkit.retrieval import KeywordIndex, Tokenizer
from ragkit.retrieval.fusion import normalized_score_fusion, reciprocal_rank_fusion
from ragkit.retrieval.tokenize import ENGLISH_STOPWORDS, LUCENE_STOPWORDS
from ragkit.types import Chunk, ScoredChunk

CHUNKS = 30  # chunks retrieved per query: enough for 10 distinct abstracts
DEPTH = 100  # candidates kept per query for the fusion grid
Qrels = dict[str, dict[str, int]]
Ranking = list[ScoredChunk]


def load(data: Path, split: str) -> tuple[list[Document], dict[str, str], Qrels]:
    docs = []
    with (data / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = f"{d['title']}\n\n{d['text']}"
            # The title also goes into metadata, as ragkit's loaders do, so that the
            # keyword index can give every chunk of an abstract its title.
            doc = Document(
                text=text, source=f"scifact:{d['_id']}", id=d["_id"], metadata={"title": d["title"]}
            )
            docs.append(doc)
    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: Qrels = {}
    with (data / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return docs, {q: queries[q] for q in qrels}, qrels


def ndcg_at_10(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    """nDCG@10 with graded gains and a log2 discount; the ideal ranking from the qrels."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def documents(hits: Ranking) -> list[str]:
    """Abstract ids, best first; an abstract scores as its best chunk."""
    best: dict[str, float] = {}
    for h in hits:
        doc = h.chunk.source.removeprefix("scifact:")
        best[doc] = max(best.get(doc, -math.inf), h.score)
    return sorted(best, key=lambda d: (-best[d], d))


def score(runs: dict[str, Ranking], qrels: Qrels) -> float:
    return statistics.fmean(ndcg_at_10(documents(runs[q]), qrels[q]) for q in qrels)


def run(search: Callable[[str], Ranking], queries: dict[str, str]) -> dict[str, Ranking]:
    return {q: search(text) for q, text in queries.items()}


def defaults(kb: Path, queries: dict[str, str], qrels: Qrels) -> None:
    """The three RAG retrieval modes as shipped, end to end, with latency for hybrid."""
    modes: tuple[Retrieval, ...] = ("dense", "keyword", "hybrid")
    for mode in modes:
        with RAG(kb, retrieval=mode) as rag:
            rag.retrieve("warm up the model and the BM25 matrix", k=CHUNKS)
            times: list[float] = []

            def timed(text: str, rag: RAG = rag, times: list[float] = times) -> Ranking:
                began = time.perf_counter()
                hits = rag.retrieve(text, k=CHUNKS)
                times.append(time.perf_counter() - began)
                return hits

            ndcg = score(run(timed, queries), qrels)
            times.sort()
            p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
            print(
                f"RAG retrieval={mode:8s} nDCG@10 {ndcg:.4f}   "
                f"latency p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
            )


def paired(name: str, a: dict[str, Ranking], b: dict[str, Ranking], qrels: Qrels) -> None:
    """Mean per-query nDCG@10 difference a - b, with a 95% normal interval."""
    diffs = [
        ndcg_at_10(documents(a[q]), qrels[q]) - ndcg_at_10(documents(b[q]), qrels[q]) for q in qrels
    ]
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs))
    print(f"{name:40s} {statistics.fmean(diffs):+.4f} ± {half:.4f}")


def grid(kb: Path, docs: list[Document], queries: dict[str, str], qrels: Qrels) -> None:
    """BM25 tokenizer and k1/b settings; fusion settings over the default BM25.

    BM25 scores chunk by chunk here (``scope="chunk"``), as when these were chosen;
    the automatic scope was chosen afterwards (``bench/scifact_scope.py``).
    """
    tokenizers = {
        "stem+nltk": Tokenizer(),
        "stem+lucene": Tokenizer(stopwords=LUCENE_STOPWORDS),
        "plain+nltk": Tokenizer(stemmer=None),
        "stem+nltk,len>=2": Tokenizer(stopwords=ENGLISH_STOPWORDS, min_length=2),
        "stem+nltk,no-title": Tokenizer(),
    }
    with RAG(kb, retrieval="dense") as rag:
        dense = run(lambda text: rag.retrieve(text, k=DEPTH), queries)
        print(f"dense                                   nDCG@10 {score(dense, qrels):.4f}")
        for name, tokenizer in tokenizers.items():
            for k1, b in ((0.9, 0.4), (1.2, 0.75), (1.5, 0.75), (1.2, 0.5), (0.9, 0.75)):
                context = () if name.endswith("no-title") else ("title", "heading_path")
                index = KeywordIndex(
                    tokenizer=tokenizer, k1=k1, b=b, context=context, scope="chunk"
                )
                sync_keyword_index(index, rag.store)
                ranked = run(functools.partial(index.search, k=DEPTH), queries)
                print(f"bm25 {name:18s} k1={k1} b={b:<4}     nDCG@10 {score(ranked, qrels):.4f}")
        index = KeywordIndex(scope="chunk")  # the shipped settings, chunk by chunk
        sync_keyword_index(index, rag.store)
        keyword = run(functools.partial(index.search, k=DEPTH), queries)
    whole = KeywordIndex()  # what chunking costs keyword search
    whole.upsert([Chunk(d.id, d.text, d.id, d.source, 0, len(d.text)) for d in docs])
    ranked = run(functools.partial(whole.search, k=DEPTH), queries)
    print(f"bm25 one chunk per abstract, defaults   nDCG@10 {score(ranked, qrels):.4f}")
    fusions: dict[str, Callable[[list[Ranking]], Ranking]] = {
        f"rrf k={c}": functools.partial(reciprocal_rank_fusion, k=c) for c in (10, 30, 60)
    }
    for w in (0.3, 0.4, 0.5, 0.6, 0.7):
        for method in ("minmax", "zscore"):
            fusions[f"{method} dense={w}"] = functools.partial(
                normalized_score_fusion, weights=[w, 1 - w], method=method
            )
    runs: dict[str, dict[str, Ranking]] = {}
    for candidates in (20, 50, DEPTH):
        for name, fuse in fusions.items():
            fused = {q: fuse([dense[q][:candidates], keyword[q][:candidates]]) for q in qrels}
            runs[f"{name} c={candidates}"] = fused
            ndcg = score({q: h[:CHUNKS] for q, h in fused.items()}, qrels)
            print(f"hybrid {name:18s} candidates={candidates:<3}  nDCG@10 {ndcg:.4f}")
    chosen = runs["minmax dense=0.5 c=50"]
    paired("minmax 0.5 - rrf k=60 (c=50)", chosen, runs["rrf k=60 c=50"], qrels)
    paired("minmax 0.5 - zscore 0.5 (c=50)", chosen, runs["zscore dense=0.5 c=50"], qrels)
    paired("minmax 0.5 c=100 - c=50", runs["minmax dense=0.5 c=100"], chosen, qrels)
    paired("minmax 0.5 - dense", chosen, dense, qrels)
    paired("minmax 0.5 - bm25", chosen, keyword, qrels)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--kb", type=Path, required=True, help="kb folder (reused across runs)")
    parser.add_argument("--grid", action="store_true", help="also run the tuning grids")
    args = parser.parse_args(argv)
    if args.grid and args.split == "test":
        parser.error("tune on train only: --grid with --split test would tune on the test set")
    docs, queries, qrels = load(args.data, args.split)
    began = time.perf_counter()
    with RAG(args.kb, retrieval="dense") as rag:
        report = rag.add(docs)
    print(f"indexed: {report}  ({time.perf_counter() - began:.0f}s)")
    print(f"{len(qrels)} {args.split} queries")
    defaults(args.kb, queries, qrels)
    if args.grid:
        grid(args.kb, docs, queries, qrels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
