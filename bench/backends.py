"""SciFact on every kb backend: quality, retrieval latency and ingest speed (issue 13).

Starts a PostgreSQL 16 with pgvector (``pgserver``, a Unix socket in a temporary
folder) and a Milvus Lite server (``milvus-lite server`` on 127.0.0.1), runs the
parts below against them and the local folder backend, then stops and deletes both.

* ``quality``: SciFact test, 300 queries, nDCG@10 / recall@100 of ``RAG(location,
  retrieval=mode)`` for ``hybrid``, ``dense`` and ``keyword``, scored by
  ``ragkit.eval.evaluate_retrieval`` exactly as ``ragkit eval beir`` does (100
  documents, 300 chunks per query, a document scores as its best chunk). The local kb
  (``--kb``, a folder: built on the first run with ``RAG``'s defaults, reused after)
  is measured as the CLI opens it. The server backends get the same chunks (default
  chunker) and the same vectors: their embedder is the bundled MiniLM behind a
  ``CachedEmbedder`` on a copy of the local kb's ``embeddings.sqlite``, so the corpus
  is encoded once (``misses`` in the JSON says how many texts were encoded again: 0).
* ``latency``: ``k=10``, the 300 test queries one at a time, every backend and mode
  taking turns query by query (rotating order), each call as ``RAG.retrieve`` makes it
  (inside ``backend.reading()``), the query embedded each time. Parts, in the same
  turns: the query embedding alone, and PostgreSQL's dense search (vector given) and
  BM25 at ``k=50`` (what hybrid asks each side for).
* ``ingest``: ``bench/ingest.py``'s method (its code): the first ``--limit`` chunks of
  SciFact, raw encode of the model against ``RAG.add`` into a new kb on the server
  (and from precomputed chunks), the systems in turns for ``--rounds`` rounds, the
  median of the per-round ratios raw time / system time; the local folder (Chroma,
  ``RAG``'s default) in the same turns for comparison.

Every figure is printed with the 1-minute load average, and the whole run is written
as JSON::

    python bench/backends.py --data ../shared/bench/scifact --kb /tmp/bk/scifact-kb \\
        --output bench/results/backends.json
    # one part, or without Milvus:
    python bench/backends.py --kb /tmp/bk/scifact-kb --only quality --skip milvus
    python bench/backends.py --kb /tmp/bk/scifact-kb --only ingest --limit 2000 --rounds 5

``--skip`` takes backends (``local``, ``postgres``, ``milvus``) and parts; ``--only``
runs just the parts named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))  # milvus_server.py

from ingest import corpus, make_embedder, raw_encode  # noqa: E402
from ingest import systems as ingest_systems  # noqa: E402
from scifact import interleaved_latency  # noqa: E402

from ragkit import RAG  # noqa: E402
from ragkit.embeddings import CachedEmbedder, SentenceTransformerEmbedder  # noqa: E402
from ragkit.eval import BeirDataset, evaluate_retrieval  # noqa: E402
from ragkit.protocols import Embedder  # noqa: E402
from ragkit.retrieval import DenseRetriever, HybridRetriever  # noqa: E402

BACKENDS = ("local", "postgres", "milvus")
PARTS = ("quality", "latency", "ingest")
MODES = ("hybrid", "dense", "keyword")
WARM_UP = "warm up the model, the indexes and the caches"  # scifact.interleaved_latency's


PG_SCHEMA = "ragkit_scifact"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def say(text: str) -> None:
    print(f"{text}  [load {load():.2f}]", flush=True)


# -- servers ---------------------------------------------------------------------------


@contextmanager
def postgres_server() -> Iterator[Any]:
    """A pgserver PostgreSQL in a new folder outside any root-private tmp tree (run as
    root, pgserver runs the server as the user ``pgserver``); deleted at the end."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="ragkit-bench-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


@contextmanager
def milvus_server() -> Iterator[str]:
    from milvus_server import milvus_lite_server

    folder = Path(tempfile.mkdtemp(prefix="ragkit-bench-milvus-"))
    try:
        with milvus_lite_server(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def postgres_memory(server: Any) -> dict[str, float]:
    """RSS and PSS (MB) summed over the postmaster and its children."""
    root = server.get_pid()
    pids = [root]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            pids.append(int(stat.parent.name))
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return {"processes": len(pids), "rss_mb": rss / 1024, "pss_mb": pss / 1024}


# -- quality ---------------------------------------------------------------------------


def cached_embedder(kb: Path, work: Path) -> CachedEmbedder:
    """The bundled MiniLM behind a copy of the local kb's vectors."""
    copy = work / "embeddings.sqlite"
    if not copy.exists():
        with RAG(kb, retrieval="dense"):  # checkpoints the kb's WAL into the file
            pass
        shutil.copy(kb / "embeddings.sqlite", copy)
    return CachedEmbedder(SentenceTransformerEmbedder(), copy)


def index(
    dataset: BeirDataset, locations: dict[str, Any], embedder: CachedEmbedder
) -> dict[str, Any]:
    """Add the corpus to every kb (the local one is built already: a no-op re-add)."""
    documents = list(dataset.corpus())
    out: dict[str, Any] = {}
    for backend, location in locations.items():
        options: dict[str, Any] = {} if backend == "local" else {"embedder": embedder}
        misses = embedder.misses
        began, before = time.perf_counter(), load()
        with RAG(location, **options) as rag:
            report = rag.add(documents)
            count = rag.store.count()
        out[backend] = {
            "seconds": round(time.perf_counter() - began, 1),
            "chunks": count,
            "chunks_added": report.chunks_added,
            "texts_encoded": embedder.misses - misses if backend != "local" else None,
            "load": [before, load()],
        }
        say(
            f"{backend}: {count} chunks, {report.chunks_added} added in {out[backend]['seconds']} s"
        )
    return out


def quality(
    dataset: BeirDataset,
    locations: dict[str, Any],
    embedder: CachedEmbedder,
    *,
    modes: Sequence[str] = MODES,
    limit: int | None = None,
    out: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """nDCG@10 per backend and mode into ``out``, saved after each (``limit``: the first
    test queries only)."""
    queries, qrels = dataset.split("test")
    if limit is not None:
        queries = dict(list(queries.items())[:limit])
    for backend, location in locations.items():
        row: dict[str, Any] = out.setdefault(backend, {})
        options: dict[str, Any] = {} if backend == "local" else {"embedder": embedder}
        for mode in modes:
            before = load()
            with RAG(location, retrieval=mode, **options) as rag:  # type: ignore[arg-type]
                rag.retrieve(WARM_UP, 10)
                result = evaluate_retrieval(rag, queries, qrels)
            row[mode] = {
                "ndcg@10": round(result.metrics["ndcg@10"], 4),
                "recall@100": round(result.metrics["recall@100"], 4),
                "p50_ms_k300": round(result.latency_p50_ms, 1),
                "p95_ms_k300": round(result.latency_p95_ms, 1),
                "load": [before, load()],
            }
            say(
                f"{backend:9s} {mode:8s} nDCG@10 {row[mode]['ndcg@10']:.4f}  "
                f"R@100 {row[mode]['recall@100']:.4f}  p50 {row[mode]['p50_ms_k300']} ms (k=300)"
            )
            save()


# -- latency ---------------------------------------------------------------------------


class Call:
    """``retrieve(query, k)`` running ``fn`` inside the backend's read snapshot, as
    ``RAG.retrieve`` does."""

    def __init__(self, rag: RAG, fn: Callable[[str, int], Any]) -> None:
        self.rag, self.fn = rag, fn

    def retrieve(self, query: str, k: int) -> Any:
        with self.rag.backend.reading():
            return self.fn(query, k)


def latency(
    dataset: BeirDataset, locations: dict[str, Any], embedder: Embedder, k: int
) -> dict[str, Any]:
    queries, _ = dataset.split("test")
    texts = list(queries.values())
    with ExitStack() as stack:
        systems: dict[str, Any] = {}
        vectors: dict[str, Any] = {}
        for backend, location in locations.items():
            options: dict[str, Any] = {} if backend == "local" else {"embedder": embedder}
            rag = stack.enter_context(RAG(location, **options))
            for mode in MODES:
                retriever = rag.backend.retriever(mode, rag.embedder)
                systems[f"{backend} {mode}"] = Call(rag, retriever.retrieve)
            if backend == "postgres":
                model = rag.embedder
                vectors = {t: model.embed_query(t) for t in [*texts, WARM_UP]}
                keyword = rag.backend.retriever("keyword", model)
                store = rag.store
                systems["embed query"] = Call(rag, lambda q, _k, m=model: m.embed_query(q))
                systems["postgres dense k=50, vector given"] = Call(
                    rag, lambda q, _k, s=store, v=vectors: s.search(v[q], 50)
                )
                systems["postgres keyword k=50"] = Call(
                    rag, lambda q, _k, r=keyword: r.retrieve(q, 50)
                )
                # BM25 after the dense search, on the caller's thread
                sequential = HybridRetriever(DenseRetriever(model, store), keyword)
                systems["postgres hybrid, sequential"] = Call(rag, sequential.retrieve)
        before = load()
        began = time.perf_counter()
        rows = interleaved_latency(systems, texts, k)
        seconds = time.perf_counter() - began
        after = load()
    print(f"| k={k}, {len(texts)} queries, load {before:.2f} before, {after:.2f} after "
          "| p50 ms | p95 ms |")  # fmt: skip
    print("| --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} |")
    rounded = {n: {m: round(v, 2) for m, v in r.items()} for n, r in rows.items()}
    return {"k": k, "queries": len(texts), "load": [before, after], "seconds": round(seconds),
            "systems": rounded}  # fmt: skip


# -- ingest ----------------------------------------------------------------------------


def ingest(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """bench/ingest.py's comparison, with the server backends' trials beside the local."""
    documents, chunks = corpus(args.data, args.limit)
    embedder = make_embedder("torch", None)
    raw_encode(embedder)([c.text for c in chunks[:2048]])  # warm up, as bench/ingest.py
    work = Path(tempfile.mkdtemp(prefix="ragkit-bench-ingest-"))
    runs: dict[str, Callable[[], None]] = {}
    local = ingest_systems(embedder, documents, chunks, work, langchain=False)
    runs["raw encode"] = local["raw encode"]
    if "local" in urls:
        runs["local RAG.add (Chroma)"] = local["ragkit RAG.add"]
    for backend, url in urls.items():
        if backend == "local":
            continue
        theirs = ingest_systems(embedder, documents, chunks, work, kb_url=url, langchain=False)
        runs[f"{backend} from chunks"] = theirs["ragkit from chunks"]
        runs[f"{backend} RAG.add"] = theirs["ragkit RAG.add"]
    times: dict[str, list[float]] = {name: [] for name in runs}
    loads: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            before = load()
            began = time.perf_counter()
            run()
            seconds = time.perf_counter() - began
            times[name].append(seconds)
            loads[name].append(before)
            say(
                f"round {round_}  {name:<24} {len(chunks) / seconds:7.1f} chunks/s  "
                f"{seconds:6.1f} s"
            )
    raw = times["raw encode"]
    summary = {}
    for name, t in times.items():
        ratios = [r / s for r, s in zip(raw, t, strict=True)]
        summary[name] = {
            "chunks_per_second": round(len(chunks) / statistics.median(t), 1),
            "ratio_to_raw_encode": round(statistics.median(ratios), 3),
            "ratios": [round(x, 3) for x in ratios],
            "seconds": [round(s, 2) for s in t],
            "load": loads[name],
        }
        print(
            f"{name:<24} {summary[name]['chunks_per_second']:7.1f} chunks/s  "
            f"{summary[name]['ratio_to_raw_encode']:.3f}x raw encode (rounds: "
            f"{', '.join(f'{x:.3f}' for x in ratios)})"
        )
    shutil.rmtree(work, ignore_errors=True)
    return {"documents": len(documents), "chunks": len(chunks), "rounds": args.rounds,
            "embedder": repr(embedder), "systems": summary}  # fmt: skip


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--kb", type=Path, required=True, help="the local SciFact kb (reused)")
    parser.add_argument("--skip", default="", help="comma-separated backends or parts")
    parser.add_argument("--only", default="", help="comma-separated parts to run")
    parser.add_argument("--modes", default=",".join(MODES), help="quality: retrieval modes")
    parser.add_argument("--queries", type=int, help="quality: the first N test queries only")
    parser.add_argument("--latency-k", type=int, default=10)
    parser.add_argument("--limit", type=int, default=2000, help="ingest: chunks")
    parser.add_argument("--rounds", type=int, default=3, help="ingest: turns per system")
    parser.add_argument("--output", type=Path, default=Path("bench/results/backends.json"))
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    parts = [p for p in (args.only.split(",") if args.only else PARTS) if p not in skip]
    backends = [b for b in BACKENDS if b not in skip]

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_start": os.getloadavg(),
    }
    dataset = BeirDataset(args.data)
    work = Path(tempfile.mkdtemp(prefix="ragkit-bench-"))
    with ExitStack() as stack:
        locations, pg = start_servers(stack, backends, args.kb, results)
        say(f"servers up: {', '.join(str(v) for v in locations.values())}")
        embedder = None
        if {"quality", "latency"} & set(parts):
            if not (args.kb / "embeddings.sqlite").exists():
                say(f"building the local kb {args.kb} (encodes the corpus once)")
                with RAG(args.kb) as rag:
                    rag.add(list(dataset.corpus()))
            embedder = cached_embedder(args.kb, work)
            results["index"] = index(dataset, locations, embedder)
            if pg is not None:
                # What autovacuum does within a minute of the build: sets the visibility
                # map, so BM25 reads postings from the index alone.
                pg.psql(f"VACUUM ANALYZE {PG_SCHEMA}.terms, {PG_SCHEMA}.chunks;")
        if "quality" in parts:
            assert embedder is not None
            results["quality"] = {"queries": args.queries or "all"}
            quality(
                dataset,
                locations,
                embedder,
                modes=args.modes.split(","),
                limit=args.queries,
                out=results["quality"],
                save=lambda: write(args.output, results),
            )
            if pg is not None:
                results["postgres_memory_after_quality"] = postgres_memory(pg)
            write(args.output, results)
        if "latency" in parts:
            assert embedder is not None
            results["latency"] = latency(dataset, locations, embedder, args.latency_k)
            write(args.output, results)
        if "ingest" in parts:
            urls = {
                b: str(v).split("&kb=")[0].split("?collection=")[0] for b, v in locations.items()
            }
            results["ingest"] = ingest(args, urls)
            write(args.output, results)
    shutil.rmtree(work, ignore_errors=True)
    results["load_end"] = os.getloadavg()
    write(args.output, results)
    print(f"results: {args.output}")
    return 0


def start_servers(
    stack: ExitStack, backends: list[str], kb: Path, results: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """The kb location of each backend (servers entered on ``stack``), and pgserver."""
    locations: dict[str, Any] = {}
    pg = None
    if "local" in backends:
        locations["local"] = kb
    if "postgres" in backends:
        pg = stack.enter_context(postgres_server())
        locations["postgres"] = f"{pg.get_uri()}&kb={PG_SCHEMA.removeprefix('ragkit_')}"
        results["postgres"] = pg.psql(
            "SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector') "
            "AS pgvector, current_setting('shared_buffers') AS shared_buffers;"
        )
    if "milvus" in backends:
        locations["milvus"] = stack.enter_context(milvus_server()) + "?collection=scifact"
    return locations, pg


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
