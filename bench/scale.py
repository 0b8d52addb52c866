"""Retrieval latency, recall, build time and memory at 10k, 100k and 1M chunks (issue 6).

Synthetic but realistic data: chunk vectors are real all-MiniLM-L6-v2 chunk vectors of
SciFact (the centres) plus Gaussian noise (cosine ~0.86 to their centre), so the
vectors are clustered the way MiniLM's are; queries are the real MiniLM vectors of the
SciFact queries. Texts are ~100 words drawn from a Zipf law over a 50,000-word
vocabulary whose most frequent words are English stopwords, as in real text.

Each size runs three subprocesses, so that ``ru_maxrss`` is the peak of one job:
``build`` (FaissStore + KeywordIndex on disk), ``query`` (open both and time dense,
keyword and hybrid retrieval, taking turns query by query) and ``recall`` (recall@10
of the store against exact search, at several ``ef_search``).

    python bench/scale.py --sizes 10000 100000 1000000 --work /tmp/scale/bench \\
        --centres /tmp/scale/kb/embeddings.sqlite --output bench/results/scale.json

``--centres`` is the ``embeddings.sqlite`` of a SciFact knowledge base (a copy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.analysis import STOPWORDS
from ragkit.protocols import Retriever
from ragkit.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, KeywordIndex
from ragkit.stores import FaissStore
from ragkit.types import Chunk, document_id

DIM = 384
VOCAB = 50_000
WORDS = 100
NOISE = 0.6  # |noise| / |centre|: cosine to the centre ~ 1 / sqrt(1 + 0.36)
BATCH = 5_000
QUERIES = 300
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "scifact"


def vocabulary() -> tuple[list[str], NDArray[np.float64]]:
    """Words by rank (stopwords first) and their Zipf-Mandelbrot probabilities."""
    rng = np.random.default_rng(7)
    words = sorted(STOPWORDS)
    seen = set(words)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    weights = np.linspace(2.0, 0.2, len(letters))
    while len(words) < VOCAB:
        word = "".join(rng.choice(letters, rng.integers(3, 11), p=weights / weights.sum()))
        if word not in seen:
            seen.add(word)
            words.append(word)
    p = 1.0 / (np.arange(VOCAB) + 2.7) ** 1.07
    return words, p / p.sum()


def centres(path: Path) -> NDArray[np.float32]:
    with sqlite3.connect(path) as db:
        blobs = [b for (b,) in db.execute("SELECT vector FROM embeddings ORDER BY text_sha256")]
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)


def batches(
    size: int, centre: NDArray[np.float32], texts: bool = True
) -> Iterator[tuple[list[Chunk], NDArray[np.float32]]]:
    """The corpus of ``size`` chunks, ``BATCH`` at a time; the same on every call.

    With ``texts=False`` the chunk list is empty (the vectors are the same).
    """
    words, p = vocabulary()
    vocab = np.array(words)
    for start in range(0, size, BATCH):
        n = min(BATCH, size - start)
        rng = np.random.default_rng([start, 11])
        picks = rng.choice(VOCAB, (n, WORDS), p=p)
        rows = centre[rng.integers(0, len(centre), n)]
        noise = rng.standard_normal((n, DIM), dtype=np.float32) * (NOISE / np.sqrt(DIM))
        vectors = rows + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = []
        for i, line in enumerate(vocab[picks].tolist() if texts else []):
            text = " ".join(line)
            source = f"doc{(start + i) // 10:06d}.txt"
            chunks.append(
                Chunk(
                    id=f"c{start + i:07d}",
                    text=text,
                    document_id=document_id(source),
                    source=source,
                    start=0,
                    end=len(text),
                    metadata={"lang": "en"},
                )
            )
        yield chunks, vectors


def queries(size: int) -> tuple[list[str], NDArray[np.float32]]:
    """Query texts (words of random chunks) and real MiniLM SciFact query vectors."""
    vectors = np.load(Path(os.environ["SCALE_WORK"]) / "queries.npy")[:QUERIES]
    words, p = vocabulary()
    rng = np.random.default_rng(5)
    texts = [" ".join(words[w] for w in rng.choice(VOCAB, 8, p=p)) for _ in range(QUERIES)]
    return texts, vectors


class _Lookup:
    """An embedder that returns the precomputed vector of each query text."""

    def __init__(self, texts: list[str], vectors: NDArray[np.float32]) -> None:
        self.table: dict[str, NDArray[np.float32]] = dict(zip(texts, vectors, strict=True))
        self.dimension = DIM

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self.table[text]

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.stack([self.table[t] for t in texts])

    @property
    def model_id(self) -> str:
        return "minilm-query-vectors"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory now (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def build(size: int, folder: Path, centre: NDArray[np.float32]) -> dict[str, Any]:
    spent = {"generate": 0.0, "store": 0.0, "keyword": 0.0}
    store, keyword = FaissStore(path=folder / "faiss"), KeywordIndex(folder / "keyword")
    t = time.perf_counter()
    for chunks, vectors in batches(size, centre):
        spent["generate"] += time.perf_counter() - t
        t = time.perf_counter()
        store.upsert(chunks, vectors)
        spent["store"] += time.perf_counter() - t
        t = time.perf_counter()
        keyword.upsert(chunks)
        spent["keyword"] += time.perf_counter() - t
        t = time.perf_counter()
    t = time.perf_counter()
    store.close()
    keyword.close()
    spent["store"] += time.perf_counter() - t
    disk = {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    return {"seconds": spent, "disk_bytes": disk, "peak_rss_mb": peak_mb(), "load": load()}


def query(size: int, folder: Path) -> dict[str, Any]:
    texts, vectors = queries(size)
    base = rss_mb()
    t = time.perf_counter()
    store = FaissStore(path=folder / "faiss")
    store.search(vectors[0], 1)
    opened = {"store_s": time.perf_counter() - t, "rss_base_mb": base, "rss_store_mb": rss_mb()}
    t = time.perf_counter()
    keyword = KeywordIndex(folder / "keyword")
    keyword.warm_up()
    opened["keyword_s"] = time.perf_counter() - t
    opened["rss_store_keyword_mb"] = rss_mb()
    dense = DenseRetriever(_Lookup(texts, vectors), store)
    retrievers: dict[str, Retriever] = {
        "dense": dense,
        "keyword": BM25Retriever(keyword),
        "hybrid": HybridRetriever(dense, BM25Retriever(keyword)),
    }
    extra = ["dense_k50", "keyword_k50", "dense_filtered"]  # hybrid asks both for 50
    times: dict[str, list[float]] = {name: [] for name in [*retrievers, *extra]}

    def one_source(i: int) -> dict[str, str]:
        return {"source": f"doc{(i * 7919) % (size // 10):06d}.txt"}

    before = load()
    for i, text in enumerate(texts):  # the modes take turns, so load hits them alike
        names = list(retrievers)
        for name in names[i % 3 :] + names[: i % 3]:
            t = time.perf_counter()
            retrievers[name].retrieve(text, k=10)
            times[name].append(time.perf_counter() - t)
        jobs: list[tuple[str, Any, tuple[Any, ...]]] = [
            ("dense_k50", retrievers["dense"].retrieve, (text, 50)),
            ("keyword_k50", retrievers["keyword"].retrieve, (text, 50)),
            ("dense_filtered", store.search, (vectors[i], 10, one_source(i))),
        ]
        for name, run, args in jobs:
            t = time.perf_counter()
            run(*args)
            times[name].append(time.perf_counter() - t)
    stats = {name: pct(ts) for name, ts in times.items()}
    dense_p50 = stats["dense"]["p50_ms"]
    ratios = {f"{n}/dense": s["p50_ms"] / dense_p50 for n, s in stats.items()}
    return {
        "open": opened,
        "latency": stats,
        "p50_ratio": ratios,
        "load_before": before,
        "load_after": load(),
        "peak_rss_mb": peak_mb(),
        "index": store.index_kind,
    }


def recall(size: int, folder: Path, centre: NDArray[np.float32]) -> dict[str, Any]:
    import faiss

    _, vectors = queries(size)
    kind = "hnsw" if size <= 50_000 else "auto"  # small sizes are exact by default
    store = FaissStore(path=folder / "faiss", index=kind)  # type: ignore[arg-type]
    t = time.perf_counter()
    store.search(vectors[0], 1)  # loads, or builds a forced HNSW (never saved: no close)
    opened = time.perf_counter() - t
    exact, ids = faiss.IndexFlatIP(DIM), list[str]()
    starts = range(0, size, BATCH)
    for start, (_, rows) in zip(starts, batches(size, centre, texts=False), strict=True):
        exact.add(rows)
        ids.extend(f"c{i:07d}" for i in range(start, start + len(rows)))
    _, truth = exact.search(vectors, 10)  # one batched exact search for every query
    flat = []
    for q in vectors[:30]:  # the latency an exact (flat) index would have, one query at a time
        t = time.perf_counter()
        exact.search(q[None, :], 10)
        flat.append(time.perf_counter() - t)
    out: dict[str, Any] = {"open_s": opened, "exact_flat": pct(flat), "ef_search": {}}
    for ef in [int(e) for e in os.environ.get("SCALE_EF", "32 64 128 256").split()]:
        store.ef_search = ef
        found, spent = 0, []
        for q, best in zip(vectors, truth, strict=True):
            t = time.perf_counter()
            hits = store.search(q, 10)
            spent.append(time.perf_counter() - t)
            found += len({ids[i] for i in best} & {h.chunk.id for h in hits})
        out["ef_search"][ef] = {"recall@10": found / truth.size, "store_search": pct(spent)}
    out["load"] = load()
    return out


def run_phase(args: argparse.Namespace) -> None:
    folder = Path(args.work) / str(args.size)
    centre = centres(Path(args.centres))
    if args.phase == "build":
        if folder.exists():
            sys.exit(f"{folder} exists; delete it to build again, or skip --phases build.")
        result = build(args.size, folder, centre)
    elif args.phase == "query":
        result = query(args.size, folder)
    else:
        result = recall(args.size, folder, centre)
    print(json.dumps(result))


def embed_queries(work: Path) -> dict[str, Any]:
    """Real MiniLM vectors of the SciFact queries, and the time to embed one."""
    from ragkit.embeddings import SentenceTransformerEmbedder

    lines = (SCIFACT / "queries.jsonl").read_text().splitlines()[:QUERIES]
    texts = [json.loads(line)["text"] for line in lines]
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    spent, vectors = [], []
    for text in texts:
        t = time.perf_counter()
        vectors.append(embedder.embed_query(text))
        spent.append(time.perf_counter() - t)
    np.save(work / "queries.npy", np.stack(vectors).astype(np.float32))
    return {"embed_query": pct(spent), "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work", default="/tmp/scale/bench")
    parser.add_argument("--centres", required=True)
    parser.add_argument("--phases", nargs="+", default=["build", "query", "recall"])
    parser.add_argument("--output")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["SCALE_WORK"] = str(work)
    results: dict[str, Any] = {"threads": os.environ.get("OMP_NUM_THREADS", "all")}
    if not (work / "queries.npy").exists() or "embed" in args.phases:
        results["embedding"] = embed_queries(work)
    for size in args.sizes:
        for phase in args.phases:
            if phase == "embed":
                continue
            command = [
                sys.executable,
                __file__,
                "--phase",
                phase,
                "--size",
                str(size),
                "--work",
                args.work,
                "--centres",
                args.centres,
            ]
            t = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"{phase} at {size} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.splitlines()[-1])
            result["wall_s"] = time.perf_counter() - t
            results.setdefault(str(size), {})[phase] = result
            print(json.dumps({"size": size, "phase": phase, **result}), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
