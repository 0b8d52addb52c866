"""Keyword search before and after a change: same hits, same scores, speed, memory.

Saves the top-10 BM25 hits of the 300 SciFact test queries from a knowledge base, for
several index settings, or checks them against a saved file (same ids in the same
order; scores equal within ``--rtol``, relative). Run it once with the old code on
``PYTHONPATH``, once with the new:

    PYTHONPATH=/tmp/old/src python bench/keyword_parity.py --kb /tmp/kb --save old.json
    PYTHONPATH=src python bench/keyword_parity.py --kb /tmp/kb --check old.json

``--time OLD_SRC`` compares the two implementations in one run: a worker process for
each (``PYTHONPATH`` = ``OLD_SRC``, then ``src``) opens the kb with ``RAG`` (its
resident size is reported after opening, its peak while the BM25 matrix is built, and
after the first hybrid search, which loads the embedding model), then both
run the 300 queries against their keyword index in turn, ``--rounds`` times each,
interleaved, so that the load of the machine falls on both alike. It prints the p50
latency of each and their ratio, with the load average.

The kb must hold SciFact (``ragkit eval beir ... --kb``); use a copy, as opening a
keyword index may rewrite its settings row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "auto": {"scope": "auto", "filters": None},
    "chunk": {"scope": "chunk", "filters": None},
    "document": {"scope": "document", "filters": None},
    "auto+filter": {"scope": "auto", "filters": {"chunk_index": {"$gte": 1}}},
    "chunk+filter": {"scope": "chunk", "filters": {"source": {"$nin": ["beir:scifact/4983"]}}},
}
K = 10


def test_queries(data: Path) -> list[str]:
    wanted = {
        line.split("\t")[0]
        for line in (data / "qrels" / "test.tsv").read_text().split("\n")[1:]
        if line
    }
    queries = [json.loads(line) for line in (data / "queries.jsonl").open(encoding="utf-8")]
    return [q["text"] for q in queries if q["_id"] in wanted]


def hits(kb: Path, queries: list[str]) -> dict[str, list[list[tuple[str, float]]]]:
    from ragkit.retrieval import KeywordIndex

    out = {}
    for name, config in CONFIGS.items():
        with KeywordIndex(kb / "keyword", scope=config["scope"]) as index:
            out[name] = [
                [(h.chunk.id, h.score) for h in index.search(q, K, config["filters"])]
                for q in queries
            ]
    return out


def check(saved: dict[str, Any], now: dict[str, Any], rtol: float) -> int:
    problems = 0
    for name, runs in saved.items():
        worst = 0.0
        for q, (old, new) in enumerate(zip(runs, now[name], strict=True)):
            if [i for i, _ in old] != [i for i, _ in new]:
                problems += 1
                print(f"{name} query {q}: ids differ\n  old {old}\n  new {new}")
                continue
            for (_, a), (_, b) in zip(old, new, strict=True):
                worst = max(worst, abs(a - b) / max(abs(a), 1e-12))
        bad = worst > rtol
        problems += bad
        print(f"{name}: {len(runs)} queries, worst relative score difference {worst:.2e}")
    print("identical top-10 ids, scores within tolerance" if not problems else "MISMATCH")
    return 1 if problems else 0


def status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


def worker(kb: Path, queries: list[str]) -> None:
    """Opens ``kb``, reports memory, then times the queries each time it reads a line."""
    from ragkit import RAG

    before = status_mb("VmRSS:")
    rag = RAG(kb)
    opened = status_mb("VmRSS:")
    index = rag.keyword
    assert index is not None
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM)
        f.write("5")
    index.warm_up()  # builds the BM25 matrix
    built = status_mb("VmHWM:")
    rag.retrieve(queries[0], k=10)  # first hybrid search: loads the embedding model
    first = status_mb("VmHWM:")
    memory = {"open_mb": opened - before, "build_peak_mb": built - opened}
    print(json.dumps({**memory, "first_search_peak_mb": first - before}))
    sys.stdout.flush()
    for _ in sys.stdin:
        times = []
        for q in queries:
            start = time.perf_counter()
            index.search(q, K)
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


def compare_speed(kb: Path, data: Path, old_src: str, rounds: int) -> None:
    new_src = str(Path(__file__).resolve().parents[1] / "src")
    procs = {}
    for name, src in (("old", old_src), ("new", new_src)):
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--kb", str(kb), "--data", str(data), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": src},
        )
        memory = json.loads(procs[name].stdout.readline())  # type: ignore[union-attr]
        print(
            f"{name}: RSS +{memory['open_mb']:.0f} MB after opening the kb; building the "
            f"BM25 matrix peaks +{memory['build_peak_mb']:.0f} MB over that; "
            f"+{memory['first_search_peak_mb']:.0f} MB after the first hybrid search"
        )
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(rounds):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
            proc = procs[name]
            proc.stdin.write("go\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            times[name] += json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    for proc in procs.values():
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
    p50 = {name: statistics.median(t) * 1000 for name, t in times.items()}
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"keyword search p50 over {rounds} x {len(times['old']) // rounds} queries: "
        f"old {p50['old']:.2f} ms, new {p50['new']:.2f} ms, "
        f"new/old {p50['new'] / p50['old']:.2f} (load average {load})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--save", type=Path, help="write the hits to this JSON file")
    parser.add_argument("--check", type=Path, help="compare the hits with this JSON file")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--time", metavar="OLD_SRC", help="time against the code in OLD_SRC")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    queries = test_queries(args.data)
    if args.worker:
        worker(args.kb, queries)
        return 0
    if args.time:
        compare_speed(args.kb, args.data, args.time, args.rounds)
    if args.save or args.check:
        now = hits(args.kb, queries)
        if args.save:
            args.save.write_text(json.dumps(now), encoding="utf-8")
            print(f"saved {sum(len(r) for r in now.values())} runs to {args.save}")
        if args.check:
            return check(json.loads(args.check.read_text(encoding="utf-8")), now, args.rtol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
