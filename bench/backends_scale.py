"""The PostgreSQL backend at 100k, 300k and 1M chunks: build time, latency, server memory.

The corpus is ``bench/scale.py``'s (its generators, imported): real MiniLM SciFact
chunk vectors as cluster centres plus noise, 100 Zipf-distributed words per chunk,
ten chunks per source, and the real MiniLM vectors of the first 300 SciFact queries.
Per size, one PostgreSQL 16 + pgvector (``pgserver``) keeps its data in
``--work/pg-<size>`` (kept between runs; delete the folder to build again):

* ``build``: ``PostgresBackend(...).store.upsert`` of 5,000 chunks at a time, what
  ``RAG.add`` writes per batch (chunk rows, vector in the HNSW index, keyword terms,
  document totals) without the model; then ``VACUUM ANALYZE`` (what autovacuum does soon after).
* ``query``: dense, keyword and hybrid retrieval at ``k=10`` (hybrid asks each side for
  50, so ``k=50`` of each is timed too) and a dense search filtered to one source, the
  modes taking turns query by query, each call inside ``backend.reading()`` as
  ``RAG.retrieve`` makes it, queries embedded beforehand (the model is not timed).
  Then the server's memory (RSS and PSS of the postmaster and its children) and the
  database's size by table and index, and ``EXPLAIN ANALYZE`` of one BM25 query.

Every line printed carries the 1-minute load average::

    OMP_NUM_THREADS=1 python bench/backends_scale.py --sizes 100000 300000 \\
        --work /tmp/pgscale --centres /tmp/bk/scifact-kb/embeddings.sqlite \\
        --output bench/results/backends-scale.json
    # 1M (1,721 s to build on 2 cores, 17.2 GB; docs/benchmarks/backends.md)
    OMP_NUM_THREADS=1 python bench/backends_scale.py --sizes 1000000 --work /tmp/pgscale \\
        --centres /tmp/bk/scifact-kb/embeddings.sqlite --output bench/results/backends-scale-1m.json
    # the queries again on a kept build, fewer queries:
    python bench/backends_scale.py --sizes 100000 --phases query --queries 100 ...

``--centres`` is the ``embeddings.sqlite`` of a SciFact knowledge base (as for
``bench/scale.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale
from backends import postgres_memory

from ragkit.backends.postgres import PostgresBackend
from ragkit.backends.urls import parse_location
from ragkit.protocols import Retriever
from ragkit.retrieval import DenseRetriever, HybridRetriever


def load() -> float:
    return round(os.getloadavg()[0], 2)


def say(text: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {text}  [load {load():.2f}]", flush=True)


def server(work: Path, size: int) -> Any:
    import pgserver

    folder = work / f"pg-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)  # run as root, pgserver runs postgres as the user pgserver
    return pgserver.get_server(folder, cleanup_mode="stop")


def sizes(backend: PostgresBackend) -> dict[str, Any]:
    schema = backend._db.schema
    with backend._db.read("sizes") as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        database = cur.fetchone()[0]
        cur.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind IN ('r', 'i', 't') ORDER BY 2 DESC",
            (schema,),
        )
        relations = {name: size for name, size in cur.fetchall() if size}
        cur.execute(f"SELECT count(*) FROM {schema}.terms")
        terms = cur.fetchone()[0]
    return {"database_bytes": database, "relations_bytes": relations, "term_rows": terms}


def build(size: int, backend: PostgresBackend, centre: Any) -> dict[str, Any]:
    spent = {"generate": 0.0, "upsert": 0.0}
    began = time.perf_counter()
    t = time.perf_counter()
    for n, (chunks, vectors) in enumerate(scale.batches(size, centre), 1):
        spent["generate"] += time.perf_counter() - t
        t = time.perf_counter()
        backend.store.upsert(chunks, vectors)
        step = time.perf_counter() - t
        spent["upsert"] += step
        if n % 10 == 0 or n * scale.BATCH >= size:
            say(
                f"build {size}: {n * scale.BATCH:,} chunks, last batch {step:.1f} s "
                f"({scale.BATCH / step:.0f} chunks/s), upserts so far {spent['upsert']:.0f} s"
            )
        t = time.perf_counter()
    t = time.perf_counter()
    # What autovacuum does after a build: statistics, and the visibility map that lets
    # BM25 read postings from the covering index alone.
    with psycopg.connect(backend.settings.dsn, autocommit=True) as conn:
        for table in ("chunks", "terms", "documents"):
            conn.execute(f"VACUUM ANALYZE {backend._db.schema}.{table}")
    spent["vacuum_analyze"] = time.perf_counter() - t
    return {
        "seconds": {k: round(v, 1) for k, v in spent.items()},
        "wall_s": round(time.perf_counter() - began, 1),
        "load_end": load(),
    }


class Snapshot:
    """``retrieve`` inside the backend's read snapshot, as ``RAG.retrieve`` does."""

    def __init__(self, backend: PostgresBackend, retriever: Any) -> None:
        self.backend, self.retriever = backend, retriever

    def retrieve(self, query: str, k: int, filters: Any = None) -> Any:
        with self.backend.reading():
            return self.retriever.retrieve(query, k, filters)


def query(size: int, backend: PostgresBackend, n_queries: int) -> dict[str, Any]:
    texts, vectors = scale.queries(size)
    texts, vectors = texts[:n_queries], vectors[:n_queries]
    dense = DenseRetriever(scale._Lookup(texts, vectors), backend.store)
    keyword = backend.keyword_retriever()
    retrievers: dict[str, Retriever] = {
        "dense": Snapshot(backend, dense),
        "keyword": Snapshot(backend, keyword),
        "hybrid": Snapshot(backend, HybridRetriever(dense, keyword)),
    }
    extra = {
        "dense_k50": (retrievers["dense"], 50, None),
        "keyword_k50": (retrievers["keyword"], 50, None),
    }
    times: dict[str, list[float]] = {n: [] for n in [*retrievers, *extra, "dense_filtered"]}
    for retriever in retrievers.values():  # warm the connections and the caches
        retriever.retrieve(texts[-1], 10)
    before = load()
    for i, text in enumerate(texts):
        names = list(retrievers)
        for name in names[i % 3 :] + names[: i % 3]:
            t = time.perf_counter()
            retrievers[name].retrieve(text, 10)
            times[name].append(time.perf_counter() - t)
        source = {"source": f"doc{(i * 7919) % (size // 10):06d}.txt"}
        jobs = [*extra.items(), ("dense_filtered", (retrievers["dense"], 10, source))]
        for name, (retriever, k, filters) in jobs:
            t = time.perf_counter()
            retriever.retrieve(text, k, filters)
            times[name].append(time.perf_counter() - t)
        if (i + 1) % 50 == 0:
            say(f"query {size}: {i + 1} queries, hybrid p50 so far "
                f"{np.percentile(times['hybrid'], 50) * 1000:.1f} ms")  # fmt: skip
    stats = {name: scale.pct(ts) for name, ts in times.items()}
    return {"queries": len(texts), "latency": stats, "load": [before, load()]}


def explain(backend: PostgresBackend, text: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the BM25 SQL for one query text."""
    statement = backend.keyword_retriever().statement(text, 50)
    assert statement is not None, f"no terms in {text!r}"
    sql, named = statement
    with backend._db.read("explain") as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, named)
        return "\n".join(row[0] for row in cur.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/pgscale"))
    parser.add_argument("--centres", required=True)
    parser.add_argument("--phases", nargs="+", default=["build", "query"])
    parser.add_argument("--queries", type=int, default=scale.QUERIES)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["SCALE_WORK"] = str(args.work)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "threads": os.environ.get("OMP_NUM_THREADS", "all")}  # fmt: skip
    if args.output and args.output.exists():
        results = {**json.loads(args.output.read_text()), **results}
    if not (args.work / "queries.npy").exists():
        results["embedding"] = scale.embed_queries(args.work)
    centre = scale.centres(Path(args.centres))
    for size in args.sizes:
        pg = server(args.work, size)
        settings = parse_location(f"{pg.get_uri()}&kb=scale")
        row: dict[str, Any] = results.setdefault(str(size), {})
        with PostgresBackend(settings) as backend:
            row["settings"] = pg.psql(
                "SELECT version(), current_setting('shared_buffers') AS shared_buffers, "
                "current_setting('work_mem') AS work_mem;"
            )
            if "build" in args.phases:
                if backend.store.count():
                    sys.exit(f"{args.work}/pg-{size} holds a build; delete it, or skip build")
                say(f"build {size}: start")
                row["build"] = build(size, backend, centre)
                row["memory_after_build"] = postgres_memory(pg)
                row["sizes"] = sizes(backend)
                say(f"build {size}: {json.dumps(row['build'])}")
                say(f"sizes {size}: {json.dumps(row['sizes'])}")
                write(args.output, results)
            if "query" in args.phases:
                row["query"] = query(size, backend, args.queries)
                row["memory_after_query"] = postgres_memory(pg)
                row["explain_bm25"] = explain(backend, scale.queries(size)[0][0])
                for name, s in row["query"]["latency"].items():
                    say(f"{size} {name:15s} p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms")
                say(f"server memory {size}: {json.dumps(row['memory_after_query'])}")
                write(args.output, results)
        pg.cleanup()  # stops the server; the data stays in --work
    write(args.output, results)


def write(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
