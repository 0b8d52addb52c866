"""How to fuse dense and BM25 on Milvus, chosen on SciFact's TRAIN queries (issue 13).

Milvus's server-side RRF ``hybrid_search`` (``MilvusHybridRetriever``) against ragkit's
``HybridRetriever`` over Milvus's dense and BM25 lists (equal-weight min-max, ragkit's
default, and RRF), and Milvus's BM25 alone; nDCG@10 scored as ``ragkit eval beir`` does,
on the first ``--queries`` training queries (the test split is not read). A Milvus Lite
server is started and deleted here; the vectors come from the local SciFact kb's cache
(``bench/backends.py``'s ``cached_embedder``)::

    python bench/backends_milvus_fusion.py --data ../shared/bench/scifact \\
        --kb /tmp/bk/scifact-kb --output bench/results/backends-milvus-fusion-train.json

Two committed results: ``backends-milvus-fusion-train.json``, Milvus's BM25 over the raw
chunk text with its own analyzer (before commit 9e12e6e), which chose the min-max fusion
(0.6802 against RRF 0.6657), and ``backends-milvus-fusion-train-terms.json``, BM25 over
ragkit's terms (after it): min-max 0.7019, RRF 0.7030, BM25 alone 0.6442.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))  # milvus_server.py

from backends import cached_embedder, milvus_server  # noqa: E402

from ragkit import RAG  # noqa: E402
from ragkit.backends.milvus.retrievers import (  # noqa: E402
    MilvusHybridRetriever,
    MilvusKeywordRetriever,
)
from ragkit.eval import BeirDataset, evaluate_retrieval  # noqa: E402
from ragkit.retrieval import DenseRetriever, HybridRetriever  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/bench/scifact")
    parser.add_argument("--kb", type=Path, default=Path("/tmp/bk/scifact-kb"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    data = BeirDataset(args.data)
    queries, qrels = data.split("train")
    queries = dict(list(queries.items())[: args.queries])
    embedder = cached_embedder(args.kb, args.kb.parent)
    out: dict[str, Any] = {"split": "train", "queries": len(queries)}
    with milvus_server() as url:
        location = url + "?collection=scifact"
        with RAG(location, embedder=embedder) as rag:
            began = time.perf_counter()
            rag.add(list(data.corpus()))
            print(f"indexed in {time.perf_counter() - began:.0f} s", flush=True)
        with RAG(location, embedder=embedder) as rag:
            store = rag.store
            dense = DenseRetriever(rag.embedder, store)
            keyword = MilvusKeywordRetriever(store)
            systems = {
                "milvus rrf (hybrid_search)": MilvusHybridRetriever(store, rag.embedder),
                "weighted minmax (HybridRetriever)": HybridRetriever(dense, keyword),
                "rrf client (HybridRetriever rrf)": HybridRetriever(dense, keyword, fusion="rrf"),
                "keyword": keyword,
            }
            for name, retriever in systems.items():
                result = evaluate_retrieval(retriever, queries, qrels)
                out[name] = round(result.metrics["ndcg@10"], 4)
                print(name, out[name], flush=True)
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
