"""What Chroma's write costs ragkit's ingest, and whether it can hide behind the model.

Two measurements on the first SciFact chunks (ragkit's default chunker, as
``bench/ingest.py`` makes them), with unit vectors drawn from a seeded generator so
no model is needed for the first:

* ``--part metadata``: one fresh persistent Chroma collection per trial, every chunk
  upserted (one call per 1,024) with more or less of what ``ChromaStore`` writes: the
  vector only, the chunk JSON only, the filter fields only, both (what ``ChromaStore``
  writes), and the chunk JSON as a Chroma document (its full-text index). Wall and CPU
  seconds per trial.
* ``--part overlap``: the embedder's raw encode of the chunk texts (as ``bench/ingest.py``
  times it), alone and with the full Chroma write running in a thread beside it, the
  thread at normal priority or at ``SCHED_IDLE`` (it may run only when a core is idle).
  If the write could hide behind the model, encode-with-writer would take no longer
  than encode alone.

The trials take turns, round after round, and print the 1-minute load average.

    python bench/chroma_write.py --data ../shared/bench/scifact --part metadata
    python bench/chroma_write.py --data ../shared/bench/scifact --part overlap --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ingest import corpus, make_embedder, raw_encode

from ragkit.stores._chroma_collection import make_client, open_collection
from ragkit.stores.codec import chunk_to_json, encode_metadata, flat_fields
from ragkit.types import Chunk

BATCH = 1024


def collection(work: Path) -> Any:
    """A new persistent collection, made and configured as ``ChromaStore`` makes its own."""
    client = make_client(Path(tempfile.mkdtemp(dir=work)))
    return open_collection(client, "bench", {"space": "cosine"}, None)[0]


def writes(chunks: list[Chunk], work: Path) -> dict[str, Callable[[], None]]:
    """One upsert-everything function per variant of what goes into Chroma."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(chunks), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [c.id for c in chunks]
    variants: dict[str, dict[str, list[Any]]] = {
        "vector only": {},
        "chunk JSON only": {"metadatas": [{"_ragkit": chunk_to_json(c)} for c in chunks]},
        "filter fields only": {"metadatas": [flat_fields(c) for c in chunks]},
        "what ChromaStore writes": {"metadatas": [encode_metadata(c) for c in chunks]},
        "fields + JSON as document": {
            "metadatas": [flat_fields(c) for c in chunks],
            "documents": [chunk_to_json(c) for c in chunks],
        },
    }

    def upsert_all(extra: dict[str, list[Any]]) -> Callable[[], None]:
        def run() -> None:
            col = collection(work)
            for s in range(0, len(ids), BATCH):
                col.upsert(
                    ids=ids[s : s + BATCH],
                    embeddings=vectors[s : s + BATCH],
                    **{key: values[s : s + BATCH] for key, values in extra.items()},
                )
            assert col.count() == len(ids)

        return run

    return {name: upsert_all(extra) for name, extra in variants.items()}


def metadata(chunks: list[Chunk], work: Path, rounds: int) -> None:
    runs = writes(chunks, work)
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for round_ in range(rounds):
        for name, run in runs.items():
            load = os.getloadavg()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            seen[name].append((wall, cpu))
            print(
                f"round {round_}  {name:<26} wall {wall:6.3f} s  cpu {cpu:6.3f} s  load {load:.2f}"
            )
    print(f"median over {rounds} rounds, {len(chunks)} chunks:")
    for name, rows in seen.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"{name:<26} wall {wall:6.3f} s  cpu {cpu:6.3f} s")


def overlap(chunks: list[Chunk], work: Path, rounds: int, backend: str) -> None:
    texts = [c.text for c in chunks]
    encode = raw_encode(make_embedder(backend, None))
    encode(texts)  # untimed: the first large encode of a process is slower
    write = writes(chunks, work)["what ChromaStore writes"]

    def writer(idle: bool, took: list[float]) -> None:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        began = time.perf_counter()
        write()
        took.append(time.perf_counter() - began)

    seen: dict[str, list[float]] = {"encode alone": [], "+ writer": [], "+ idle writer": []}
    for round_ in range(rounds):
        for name, times in seen.items():
            load = os.getloadavg()[0]
            took: list[float] = []
            thread = None
            if name != "encode alone":
                thread = threading.Thread(target=writer, args=(name == "+ idle writer", took))
                thread.start()
            began = time.perf_counter()
            encode(texts)
            if thread is not None:
                thread.join()
            seconds = time.perf_counter() - began
            times.append(seconds)
            extra = f"  (write alone in its thread: {took[0]:.2f} s)" if took else ""
            print(f"round {round_}  {name:<14} {seconds:6.2f} s  load {load:.2f}{extra}")
    alone = statistics.median(seen["encode alone"])
    for name, times in seen.items():
        median = statistics.median(times)
        print(f"{name:<14} median {median:6.2f} s  (+{median - alone:.2f} s over encode alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument("--part", choices=["metadata", "overlap"], required=True)
    parser.add_argument("--limit", type=int, default=2000, help="chunks (default 2,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["torch", "torch-fp32", "onnx"], default="torch")
    args = parser.parse_args()
    _, chunks = corpus(args.data, args.limit)
    chunks = chunks[: args.limit]
    with tempfile.TemporaryDirectory(prefix="ragkit-chroma-write-") as work:
        if args.part == "metadata":
            metadata(chunks, Path(work), args.rounds)
        else:
            overlap(chunks, Path(work), args.rounds, args.backend)


if __name__ == "__main__":
    main()
