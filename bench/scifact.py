"""SciFact (BEIR) retrieval: ragkit dense, BM25 and hybrid against LangChain's equivalents.

One run, one split (``test`` by default), one set of chunks, one model:

* ragkit: ``RAG(kb, retrieval=...)`` for ``dense``, ``keyword`` and ``hybrid``, scored by
  :func:`ragkit.eval.evaluate_retrieval`, the code behind ``ragkit eval beir``.
* LangChain: ``HuggingFaceEmbeddings`` (the same bundled MiniLM) + ``Chroma``,
  ``BM25Retriever`` (its default whitespace preprocessing, rank-bm25) and
  ``EnsembleRetriever`` (0.5/0.5) over the *ragkit chunk texts*, so the comparison
  isolates retrieval. LangChain retrievers return no scores: a chunk's score is its rank.
* ``--seed000``: also LangChain as its tutorials configure it, the documents split by
  ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)``.

Every system retrieves ``--chunk-k`` chunks per query (300, as ``ragkit eval beir``
does) and ranks documents by their best chunk; the same metric code scores all of them.
Latency is also measured at ``k=10`` (what an application asks for), one query at a time;
``--latency-only`` measures only that (at ``--latency-k``, default 4, ``RAG``'s default),
the systems taking turns query by query (fair on a shared CPU), with LangChain's
retrievers built for that ``k``, and prints a table to paste with the load average.
Also measured: ragkit with ``KeywordIndex(scope="chunk")``, the default before the
automatic scope (rows ``bm25-chunk`` and ``hybrid-chunk``).

    python bench/scifact.py --data ../shared/bench/scifact --kb /tmp/scifact-kb \\
        --langchain /tmp/scifact-langchain --output bench/results/scifact-test.json
    python bench/scifact.py --data ../shared/bench/scifact --kb /tmp/scifact-kb \\
        --langchain /tmp/scifact-langchain --latency-only
    # ragkit only (no LangChain), hybrid against the chunk-scope hybrid, k=4
    python bench/scifact.py --data ../shared/bench/scifact --kb /tmp/scifact-kb \\
        --langchain /tmp/scifact-langchain --latency-only --skip langchain

The kb folder caches ragkit's embeddings and the ``--langchain`` folder persists
LangChain's Chroma collections, so only the first run embeds the corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragkit import RAG
from ragkit._build import Retrieval
from ragkit.backends.local import sync_keyword_index
from ragkit.embeddings import bundled_minilm_path
from ragkit.eval import BeirDataset, RetrievalReport, evaluate_retrieval
from ragkit.eval.runner import percentile
from ragkit.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, KeywordIndex
from ragkit.types import Chunk, Document, ScoredChunk

MODES: tuple[tuple[str, Retrieval], ...] = (
    ("dense", "dense"),
    ("bm25", "keyword"),
    ("hybrid", "hybrid"),
)


class RankedLangChain:
    """A LangChain retriever as a ragkit retriever; document ids from chunk metadata."""

    def __init__(self, retriever: Any, chunks: dict[str, Chunk]) -> None:
        self.retriever = retriever
        self.chunks = chunks

    def retrieve(self, query: str, k: int = 4, filters: Any = None) -> list[ScoredChunk]:
        docs = self.retriever.invoke(query)[:k]
        # No scores come back: the rank is the score (higher is better).
        return [
            ScoredChunk(self.chunks[d.metadata["chunk_id"]], float(len(docs) - rank))
            for rank, d in enumerate(docs)
        ]


def chunk_of(doc: Any, position: int) -> Chunk:
    """A ragkit chunk for a LangChain document split from a BEIR abstract."""
    text = doc.page_content
    start = int(doc.metadata.get("start_index", 0))
    ident = f"{doc.metadata['document_id']}:{position}"
    return Chunk(
        ident, text, doc.metadata["document_id"], doc.metadata["source"], start, start + len(text)
    )


def chroma(
    folder: Path,
    name: str,
    chunks: dict[str, Chunk],
    *,
    embeddings: Any,
    vectors: Callable[[list[str]], Any] | None = None,
) -> Any:
    """LangChain's Chroma collection ``name`` in ``folder``, adding the chunks it lacks.

    With ``vectors`` (texts -> matrix), chunk vectors come from there (ragkit's cache of
    the same model's output) instead of being embedded again through ``embeddings``;
    queries are always embedded by ``embeddings``. The collection keeps LangChain's
    defaults (Chroma's L2 space over MiniLM's unit vectors).
    """
    import chromadb
    from langchain_chroma import Chroma

    client = chromadb.PersistentClient(path=str(folder))
    store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
    have = set(store.get(include=[])["ids"])
    missing = [c for i, c in chunks.items() if i not in have]
    if missing:
        how = "copying ragkit's cached vectors of" if vectors else "embedding"
        print(f"LangChain: {how} {len(missing)} chunks into {folder}/{name}", flush=True)
        began = time.perf_counter()
        collection = client.get_or_create_collection(name)
        for i in range(0, len(missing), 1000):
            batch = missing[i : i + 1000]
            texts = [c.text for c in batch]
            metadatas: list[Any] = [{"chunk_id": c.id, "document_id": c.document_id} for c in batch]
            ids = [c.id for c in batch]
            if vectors is None:
                store.add_texts(texts, metadatas=metadatas, ids=ids)
            else:
                collection.add(
                    ids=ids, embeddings=vectors(texts), documents=texts, metadatas=metadatas
                )
        print(f"LangChain: done in {time.perf_counter() - began:.0f} s", flush=True)
    return store


def langchain_systems(
    chunks: dict[str, Chunk],
    *,
    folder: Path,
    name: str,
    depth: int,
    embeddings: Any,
    vectors: Callable[[list[str]], Any] | None = None,
) -> dict[str, RankedLangChain]:
    """LangChain's dense, BM25 and ensemble retrievers over ``chunks``, ``depth`` deep."""
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_core.documents import Document as LCDocument

    store = chroma(folder, name, chunks, embeddings=embeddings, vectors=vectors)
    dense = store.as_retriever(search_kwargs={"k": depth})
    docs = [LCDocument(c.text, metadata={"chunk_id": c.id}) for c in chunks.values()]
    bm25 = BM25Retriever.from_documents(docs, k=depth)
    ensemble = EnsembleRetriever(retrievers=[dense, bm25], weights=[0.5, 0.5])
    return {
        "dense": RankedLangChain(dense, chunks),
        "bm25": RankedLangChain(bm25, chunks),
        "hybrid": RankedLangChain(ensemble, chunks),
    }


def seed000_chunks(documents: Sequence[Document]) -> dict[str, Chunk]:
    """The abstracts split as LangChain's tutorials do: 1000 characters, 200 overlap."""
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=1000, chunk_overlap=200, add_start_index=True
    )
    out: dict[str, Chunk] = {}
    for d in documents:
        parts = splitter.split_documents(
            [LCDocument(d.text, metadata={"document_id": d.id, "source": d.source})]
        )
        for position, part in enumerate(parts):
            chunk = chunk_of(part, position)
            out[chunk.id] = chunk
    return out


def latency(retriever: Any, queries: Sequence[str], k: int) -> dict[str, float]:
    """p50/p95 milliseconds of ``retrieve(query, k)``, one query at a time."""
    times = []
    for text in queries:
        began = time.perf_counter()
        retriever.retrieve(text, k)
        times.append(time.perf_counter() - began)
    return {"p50_ms": percentile(times, 50) * 1000, "p95_ms": percentile(times, 95) * 1000}


def interleaved_latency(
    systems: dict[str, Any], queries: Sequence[str], k: int
) -> dict[str, dict[str, float]]:
    """p50/p95 ms per system, the systems taking turns on each query.

    On a shared CPU the load changes from minute to minute; taking turns (in an order
    that rotates) gives every system the same share of quiet and busy moments.
    """
    names = list(systems)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        systems[name].retrieve("warm up the model, the indexes and the caches", k)
    for i, text in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            began = time.perf_counter()
            systems[name].retrieve(text, k)
            times[name].append(time.perf_counter() - began)
    return {
        name: {"p50_ms": percentile(t, 50) * 1000, "p95_ms": percentile(t, 95) * 1000}
        for name, t in times.items()
    }


def latency_only(
    args: argparse.Namespace, queries: dict[str, str], skip: set[str]
) -> dict[str, Any]:
    """Interleaved latency of ragkit's and LangChain's retrievers (no metrics)."""
    k = args.latency_k
    with RAG(args.kb, retrieval="hybrid") as rag:
        assert rag.keyword is not None
        chunks = {c.id: c for c in rag.store.get(rag.store.ids())}
        by_chunk = KeywordIndex(scope="chunk")
        sync_keyword_index(by_chunk, rag.store)
        dense = DenseRetriever(rag.embedder, rag.store)
        systems: dict[str, Any] = {
            "ragkit dense": dense,
            "ragkit bm25": BM25Retriever(rag.keyword),
            "ragkit hybrid": HybridRetriever(dense, BM25Retriever(rag.keyword)),
            "ragkit bm25-chunk": BM25Retriever(by_chunk),
            "ragkit hybrid-chunk": HybridRetriever(dense, BM25Retriever(by_chunk)),
        }
        if "langchain" not in skip:
            from langchain_huggingface import HuggingFaceEmbeddings

            embeddings = HuggingFaceEmbeddings(model_name=str(bundled_minilm_path()))
            lc = langchain_systems(
                chunks, folder=args.langchain, name="ragkit_chunks", depth=k, embeddings=embeddings
            )
            systems.update({f"langchain {name}": r for name, r in lc.items()})
        systems = {name: r for name, r in systems.items() if name not in skip}
        before = os.getloadavg()
        out = interleaved_latency(systems, list(queries.values()), k)
        after = os.getloadavg()
    load = f"load average {before[0]:.1f} before, {after[0]:.1f} after"
    print(f"| k={k}, {len(queries)} queries, {load} | p50 ms | p95 ms | p50 vs hybrid-chunk |")
    print("| --- | --- | --- | --- |")
    base = out.get("ragkit hybrid-chunk", {}).get("p50_ms")
    for name, row in out.items():
        ratio = f"{row['p50_ms'] / base:.2f}x" if base and name.startswith("ragkit hybrid") else ""
        print(f"| {name} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {ratio} |")
    return {"k": k, "load_average": [before, after], "systems": out}


def measure(
    name: str,
    retriever: Any,
    *,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    chunk_k: int,
    results: dict[str, Any],
) -> None:
    retriever.retrieve("warm up the model, the indexes and the caches", 10)
    report: RetrievalReport = evaluate_retrieval(retriever, queries, qrels, k=100, chunk_k=chunk_k)
    at10 = latency(retriever, list(queries.values()), 10)
    row = {
        "ndcg@10": report.metrics["ndcg@10"],
        "recall@100": report.metrics["recall@100"],
        "p50_ms": report.latency_p50_ms,
        "p95_ms": report.latency_p95_ms,
        "k10_p50_ms": at10["p50_ms"],
        "k10_p95_ms": at10["p95_ms"],
        "report": {k: v for k, v in report.to_dict().items() if k != "per_query"},
    }
    results[name] = row
    print(
        f"{name:24s} nDCG@10 {row['ndcg@10']:.4f}  R@100 {row['recall@100']:.4f}  "
        f"p50/p95 {row['p50_ms']:.0f}/{row['p95_ms']:.0f} ms (k={chunk_k}), "
        f"{row['k10_p50_ms']:.0f}/{row['k10_p95_ms']:.0f} ms (k=10)",
        flush=True,
    )


def table(results: dict[str, Any], chunk_k: int) -> str:
    head = (
        f"| system | nDCG@10 | recall@100 | p50 / p95 ms (k={chunk_k}) | p50 / p95 ms (k=10) "
        "| nDCG vs LangChain | p50 (k=10) vs LangChain |"
    )
    lines = [head, "|" + "---|" * 7]
    for name, row in results.items():
        system, _, method = name.partition(" ")
        ratio_ndcg = ratio_p50 = ""
        peer = results.get(f"langchain {method.removesuffix('-chunk')}")
        if system == "ragkit" and peer:
            ratio_ndcg = f"{row['ndcg@10'] / peer['ndcg@10']:.2f}x"
            ratio_p50 = f"{row['k10_p50_ms'] / peer['k10_p50_ms']:.2f}x"
        lines.append(
            f"| {name} | {row['ndcg@10']:.4f} | {row['recall@100']:.4f} "
            f"| {row['p50_ms']:.0f} / {row['p95_ms']:.0f} "
            f"| {row['k10_p50_ms']:.0f} / {row['k10_p95_ms']:.0f} | {ratio_ndcg} | {ratio_p50} |"
        )
    return "\n".join(lines)


def measure_ragkit(
    args: argparse.Namespace,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    skip: set[str],
    results: dict[str, Any],
) -> None:
    """ragkit as ``RAG`` ships it, then with chunk-scope BM25."""
    for label, mode in MODES:
        if f"ragkit {label}" in skip:
            continue
        with RAG(args.kb, retrieval=mode) as rag:
            measure(
                f"ragkit {label}",
                rag,
                queries=queries,
                qrels=qrels,
                chunk_k=args.chunk_k,
                results=results,
            )

    # The keyword index scoring every chunk on its own text (the default before "auto").
    with RAG(args.kb, retrieval="dense") as rag:
        by_chunk = KeywordIndex(scope="chunk")
        sync_keyword_index(by_chunk, rag.store)
        variants = {
            "ragkit bm25-chunk": BM25Retriever(by_chunk),
            "ragkit hybrid-chunk": HybridRetriever(
                DenseRetriever(rag.embedder, rag.store), BM25Retriever(by_chunk)
            ),
        }
        for name, retriever in variants.items():
            if name not in skip:
                measure(
                    name,
                    retriever,
                    queries=queries,
                    qrels=qrels,
                    chunk_k=args.chunk_k,
                    results=results,
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--split", default="test", help="qrels split (report on test)")
    parser.add_argument("--kb", type=Path, required=True, help="ragkit kb folder (reused)")
    parser.add_argument("--langchain", type=Path, required=True, help="LangChain Chroma folder")
    parser.add_argument("--chunk-k", type=int, default=300, help="chunks per query (300)")
    parser.add_argument("--seed000", action="store_true", help="also LangChain 1000/200 chunks")
    parser.add_argument(
        "--reembed",
        action="store_true",
        help="embed the ragkit chunks through HuggingFaceEmbeddings instead of copying "
        "ragkit's cached vectors of the same model into LangChain's Chroma",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only time k=10 retrieval, the systems taking turns query by query",
    )
    parser.add_argument(
        "--latency-k", type=int, default=4, help="k for --latency-only (4, RAG's default)"
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated systems to leave out ('langchain': all LangChain systems)",
    )
    parser.add_argument("--output", type=Path, default=Path("scifact-bench.json"))
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    data = BeirDataset(args.data)
    queries, qrels = data.split(args.split)
    if args.latency_only:
        latencies = latency_only(args, queries, skip)
        args.output.write_text(json.dumps({"latency_interleaved": latencies}, indent=2) + "\n")
        print(f"results: {args.output}")
        return 0
    documents = list(data.corpus())
    results: dict[str, Any] = {}
    print(f"SciFact {args.split}: {len(queries)} queries, {len(documents)} documents", flush=True)

    with RAG(args.kb, retrieval="dense") as rag:
        report = rag.add(documents)
        ragkit_chunks = {c.id: c for c in rag.store.get(rag.store.ids())}
    print(f"ragkit kb: {report}; {len(ragkit_chunks)} chunks", flush=True)

    measure_ragkit(args, queries, qrels, skip, results)

    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(model_name=str(bundled_minilm_path()))
    configs: list[tuple[str, str, Callable[[], dict[str, Chunk]]]] = [
        ("langchain", "ragkit_chunks", lambda: ragkit_chunks)
    ]
    if args.seed000:
        configs.append(
            ("langchain-1000/200", "seed000_1000_200", lambda: seed000_chunks(documents))
        )
    with RAG(args.kb, retrieval="dense") as rag:

        def cached(texts: list[str]) -> Any:
            return rag.embedder.embed_documents(texts).tolist()

        for prefix, collection, make in configs:
            chunks = make()
            reuse = cached if prefix == "langchain" and not args.reembed else None
            systems = langchain_systems(
                chunks,
                folder=args.langchain,
                name=collection,
                depth=args.chunk_k,
                embeddings=embeddings,
                vectors=reuse,
            )
            for label, retriever in systems.items():
                if f"{prefix} {label}" not in skip:
                    measure(
                        f"{prefix} {label}",
                        retriever,
                        queries=queries,
                        qrels=qrels,
                        chunk_k=args.chunk_k,
                        results=results,
                    )

    print()
    print(table(results, args.chunk_k))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "split": args.split,
        "queries": len(queries),
        "documents": len(documents),
        "ragkit_chunks": len(ragkit_chunks),
        "chunk_k": args.chunk_k,
        "model": str(bundled_minilm_path()),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
