"""Ingest throughput on SciFact chunks: ragkit against LangChain and against raw encode.

Every system gets the same chunks (SciFact abstracts split by ragkit's default
``RecursiveChunker``, 160/24 tokens; ``--limit N`` keeps the first documents whose
chunks add up to at least N) and runs in a fresh temporary folder per trial:

* ``raw encode``: the backend's own encode of the chunk texts, nothing else (the limit);
  ``torch``: ``SentenceTransformer.encode`` (normalized) at the embedder's batch size
  and precision (``--backend torch``: ``"auto"``, bfloat16 autocast on CPUs with
  native bfloat16; ``torch-fp32``: float32), ``onnx``: ``OnnxEmbedder.embed_documents``.
* ``ragkit from chunks``: ``RAG.add`` of the documents with a chunker that hands back the
  precomputed chunks: embedding cache, Chroma, keyword index and record, no chunking.
* ``ragkit RAG.add``: ``RAG(folder, embedder=...).add(documents)``, end to end.
* ``langchain``: ``Chroma.from_documents`` (langchain-chroma, persisted) with
  ``HuggingFaceEmbeddings`` (langchain-huggingface, the same bundled MiniLM files, torch
  float32: LangChain's default whatever ``--backend`` says).

The systems take turns, round after round, so each sees the same share of a busy CPU;
each trial prints chunks/s and the 1-minute load average, and the summary gives every
system's median chunks/s and its median ratio to raw encode in the same round.

    python bench/ingest.py --data ../shared/bench/scifact --backend torch --limit 2000
    python bench/ingest.py --data ../shared/bench/scifact --backend torch-fp32 --limit 2000
    python bench/ingest.py --data ../shared/bench/scifact --backend onnx --limit 2000
    python bench/ingest.py --data ../shared/bench/scifact --backend torch --limit 2000 --store faiss

``--store faiss`` puts ragkit's chunks in a ``FaissStore`` instead of ``RAG``'s default
Chroma, to separate Chroma's own write cost from the rest of the pipeline.
``--kb-url`` writes ragkit's trials into a server instead of a folder: a new kb per
trial (``kb=`` of a ``postgresql://`` URL, ``collection=`` of a ``milvus://`` one);
``bench/backends.py --only ingest`` starts a PostgreSQL of its own and runs this:

    python bench/ingest.py --data ../shared/bench/scifact --backend torch --limit 2000 \
        --rounds 3 --without-langchain --kb-url 'postgresql://me@localhost/db'
``--without-langchain`` leaves LangChain out, for long runs on the whole corpus:

    python bench/ingest.py --data ../shared/bench/scifact --backend torch --rounds 2 \
        --store faiss --without-langchain

``--scifact KB`` instead indexes the whole corpus into a new folder KB with ``RAG``'s
defaults and the chosen backend, times it, and scores the test queries (nDCG@10,
dense and hybrid), the figures behind docs/benchmarks/ingest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragkit import RAG
from ragkit.chunking import RecursiveChunker
from ragkit.embeddings import OnnxEmbedder, SentenceTransformerEmbedder, bundled_minilm_path
from ragkit.eval import BeirDataset, evaluate_retrieval
from ragkit.protocols import Embedder
from ragkit.types import Chunk, Document


class Precomputed:
    """A chunker that returns chunks computed beforehand (so chunking is not timed)."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._by_document: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            self._by_document.setdefault(chunk.document_id, []).append(chunk)

    def split(self, document: Document) -> list[Chunk]:
        return self._by_document.get(document.id, [])


def make_embedder(backend: str, threads: int | None) -> Embedder:
    if backend == "onnx":
        return OnnxEmbedder(threads=threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return SentenceTransformerEmbedder(precision="float32" if backend == "torch-fp32" else "auto")


def raw_encode(embedder: Embedder) -> Callable[[list[str]], Any]:
    """The backend's encode, without ragkit's wrapper where there is one."""
    if isinstance(embedder, SentenceTransformerEmbedder):
        model = embedder._load()

        def encode(texts: list[str]) -> Any:
            with embedder._autocast(len(texts)):  # the embedder's own precision
                return model.encode(
                    texts,
                    batch_size=embedder.batch_size,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )

        return encode
    return embedder.embed_documents


def corpus(data: Path, limit: int | None) -> tuple[list[Document], list[Chunk]]:
    """SciFact documents and their default chunks; with a limit, the first documents
    whose chunks reach it."""
    chunker = RecursiveChunker()
    documents: list[Document] = []
    chunks: list[Chunk] = []
    for document in BeirDataset(data).corpus():
        if limit is not None and len(chunks) >= limit:
            break
        documents.append(document)
        chunks.extend(chunker.split(document))
    return documents, chunks


def systems(
    embedder: Embedder,
    documents: list[Document],
    chunks: list[Chunk],
    work: Path,
    store: str = "chroma",
    *,
    kb_url: str | None = None,
    langchain: bool = True,
) -> dict[str, Callable[[], None]]:
    texts = [c.text for c in chunks]
    encode = raw_encode(embedder)
    precomputed = Precomputed(chunks)
    options: dict[str, Any] = {} if kb_url else {"store": store}

    def fresh(name: str) -> Path | str:
        if kb_url:
            return fresh_kb(kb_url, name)
        return Path(tempfile.mkdtemp(prefix=name + "-", dir=work))

    def ragkit_chunks() -> None:
        with RAG(fresh("chunks"), embedder=embedder, chunker=precomputed, **options) as rag:
            report = rag.add(documents)
        assert report.chunks_added == len(chunks), report

    def ragkit_add() -> None:
        with RAG(fresh("add"), embedder=embedder, **options) as rag:
            report = rag.add(documents)
        assert report.chunks_added == len(chunks), report

    runs: dict[str, Callable[[], None]] = {
        "raw encode": lambda: encode(texts),
        "ragkit from chunks": ragkit_chunks,
        "ragkit RAG.add": ragkit_add,
    }
    if langchain:
        runs["langchain"] = langchain_system(chunks, work)
    return runs


def langchain_system(chunks: list[Chunk], work: Path) -> Callable[[], None]:
    """``Chroma.from_documents`` with ``HuggingFaceEmbeddings`` into a fresh folder."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document as LcDocument
    from langchain_huggingface import HuggingFaceEmbeddings

    lc_embeddings = HuggingFaceEmbeddings(model_name=str(bundled_minilm_path()))
    lc_documents = [
        LcDocument(page_content=c.text, metadata={"source": c.source, "chunk_id": c.id})
        for c in chunks
    ]

    def langchain() -> None:
        store = Chroma.from_documents(
            lc_documents,
            lc_embeddings,
            persist_directory=tempfile.mkdtemp(prefix="langchain-", dir=work),
        )
        assert store._collection.count() == len(chunks)

    return langchain


def fresh_kb(url: str, name: str) -> str:
    """A new, empty kb on the server of ``url`` (a ``postgresql://`` or ``milvus://`` URL)."""
    key = "collection" if url.startswith("milvus") else "kb"
    return f"{url}{'&' if '?' in url else '?'}{key}={name}_{uuid.uuid4().hex[:12]}"


def compare(args: argparse.Namespace) -> dict[str, Any]:
    documents, chunks = corpus(args.data, args.limit)
    embedder = make_embedder(args.backend, args.threads)
    # One untimed encode of (up to 2,048) chunks: the first large encode of a process
    # runs 10-20 % slower (13.8 s against 11.5-12.2 s later for 2,000 chunks), which
    # would flatter every ratio of round 0; a single text would not even reach bfloat16.
    raw_encode(embedder)([c.text for c in chunks[:2048]])
    work = Path(tempfile.mkdtemp(prefix="ragkit-ingest-"))
    runs = systems(
        embedder,
        documents,
        chunks,
        work,
        args.store,
        kb_url=args.kb_url,
        langchain=not args.without_langchain,
    )
    times: dict[str, list[float]] = {name: [] for name in runs}
    loads: list[float] = []
    for round_ in range(args.rounds):
        for name, run in runs.items():
            load = os.getloadavg()[0]
            began = time.perf_counter()
            run()
            seconds = time.perf_counter() - began
            times[name].append(seconds)
            loads.append(load)
            print(
                f"round {round_}  {name:<20} {len(chunks) / seconds:7.1f} chunks/s  "
                f"{seconds:7.1f} s  load {load:.2f}",
                flush=True,
            )
    raw = times["raw encode"]
    summary = {
        name: {
            "chunks_per_second": round(len(chunks) / statistics.median(t), 2),
            "ratio_to_raw_encode": round(
                statistics.median(r / s for r, s in zip(raw, t, strict=True)), 3
            ),
            "seconds": [round(s, 2) for s in t],
        }
        for name, t in times.items()
    }
    for name, row in summary.items():
        print(
            f"{name:<20} {row['chunks_per_second']:7.1f} chunks/s  "
            f"{row['ratio_to_raw_encode']:.3f}x raw encode"
        )
    if "langchain" in times:
        lc = statistics.median(times["langchain"])
        add = statistics.median(times["ragkit RAG.add"])
        print(f"ragkit RAG.add vs langchain: {lc / add:.2f}x")
    return {
        "backend": args.backend,
        "store": "url" if args.kb_url else args.store,
        "embedder": repr(embedder),
        "model_id": embedder.model_id,
        "documents": len(documents),
        "chunks": len(chunks),
        "load_average_1min": [round(x, 2) for x in loads],
        "systems": summary,
    }


def scifact(args: argparse.Namespace) -> dict[str, Any]:
    """Index the whole corpus with RAG's defaults and the backend; score test queries."""
    dataset = BeirDataset(args.data)
    embedder = make_embedder(args.backend, args.threads)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with RAG(args.scifact, embedder=embedder, store=args.store) as rag:
        report = rag.add(list(dataset.corpus()))
        count = rag.store.count()
    seconds = time.perf_counter() - began
    after = os.getloadavg()[0]
    print(f"indexed {count} chunks in {seconds:.1f} s", flush=True)
    print(f"load average {load:.2f} before, {after:.2f} after", flush=True)
    queries, qrels = dataset.split("test")
    scores: dict[str, float] = {}
    for mode in ("hybrid", "dense"):
        with RAG(args.scifact, embedder=embedder, retrieval=mode) as rag:  # type: ignore[arg-type]
            result = evaluate_retrieval(rag, queries, qrels)
        scores[mode] = round(result.metrics["ndcg@10"], 4)
        print(f"{mode}: nDCG@10 {scores[mode]:.4f}", flush=True)
    return {
        "backend": args.backend,
        "store": args.store,
        "embedder": repr(embedder),
        "model_id": embedder.model_id,
        "chunks": count,
        "chunks_added": report.chunks_added,
        "index_seconds": round(seconds, 1),
        "load_average_1min_before": round(load, 2),
        "load_average_1min_after": round(after, 2),
        "ndcg@10": scores,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--backend", choices=("torch", "torch-fp32", "onnx"), default="torch")
    parser.add_argument(
        "--store", choices=("chroma", "faiss"), default="chroma", help="ragkit's store"
    )
    parser.add_argument(
        "--kb-url",
        help="a postgresql:// or milvus:// server: ragkit's trials write a new kb there "
        "(instead of a folder with --store)",
    )
    parser.add_argument("--threads", type=int, help="encode threads (default: the backend's)")
    parser.add_argument("--limit", type=int, help="chunks to use (whole documents; all if unset)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per system")
    parser.add_argument(
        "--without-langchain", action="store_true", help="skip LangChain (long runs)"
    )
    parser.add_argument("--scifact", type=Path, metavar="KB", help="index + score SciFact in KB")
    parser.add_argument("--output", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    results = scifact(args) if args.scifact else compare(args)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
