"""Load on ``ragkit serve`` over loopback: search and ask latency, HTTP overhead, ingest.

A real server (``uvicorn --factory ragkit.server.app:create_app_from_env``, its own
process, one worker, the embedded defaults: bundled MiniLM, Chroma, hybrid retrieval,
extractive answers) on 127.0.0.1, driven by plain asyncio + httpx from this process.
Everything is bounded: ``--requests`` per level and phase, ``--seconds`` at most per level
and phase, ``--rounds`` ingest rounds; nothing leaves the machine.

1. **Ingest**, taking turns round after round (who goes first alternates): the same
   files uploaded through the API into a new kb (one multipart request, then the job
   waited for) against ``RAG(folder).add(files)`` in this process. Both times include
   opening the kb; a first untimed round loads the model in both processes. The ratio
   is API throughput / ``RAG.add`` throughput (target >= 0.9x).
2. **HTTP overhead**, one client: each query is run through ``RAG.retrieve`` in process
   (a kb built by ``RAG.add`` of the same files) and through ``POST /search``, taking
   turns; overhead = p50(HTTP) - p50(in process) (target <= 5 ms). The in-process call
   runs in a worker thread, as the server runs it: on a loaded CPU, torch's OpenMP team
   of the main thread was measured 10x slower than a worker thread's (300 ms against
   24 ms p50 at load 11 on 2 cores), which would credit HTTP with a negative cost.
3. **Load** at 1, 8 and 32 concurrent clients (``--levels``): p50/p95 of ``search``
   and of ``ask`` (streamed: the whole stream until ``done``), and the time to the
   first SSE event (``sources``) of ``ask``; requests per second.

The files: SciFact's first ``--docs`` abstracts as ``.txt`` files (title and text),
from ``--scifact``, or the files of ``--folder`` (e.g. ``examples/sample_docs``);
queries: SciFact's claims, or ``--query`` strings.

    python bench/server_load.py --scifact ../shared/bench/scifact --docs 300
    python bench/server_load.py --folder examples/sample_docs --query "How do I deploy?"

Prints a JSON summary at the end (``--output FILE`` writes it too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ragkit import RAG
from ragkit.backends.keys import create_key
from ragkit.backends.local_catalog import LocalCatalog
from ragkit.client import Client
from ragkit.server.app import SETTINGS_ENV
from ragkit.server.settings import ServerSettings
from ragkit.server.testing import free_port

TENANT = "bench"


def load() -> float:
    return os.getloadavg()[0]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 0.5) * 1000, 2),
        "p95_ms": round(pct(values, 0.95) * 1000, 2),
    }


# -- data ------------------------------------------------------------------------------


def scifact_files(scifact: Path, n: int, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if len(paths) >= n:
                break
            doc = json.loads(line)
            path = folder / f"{doc['_id']}.txt"
            path.write_text(f"{doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
            paths.append(path)
    return paths


def scifact_queries(scifact: Path, n: int) -> list[str]:
    out = []
    with (scifact / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            out.append(json.loads(line)["text"])
            if len(out) >= n:
                break
    return out


# -- the server ------------------------------------------------------------------------


class Server:
    """``uvicorn --factory ragkit.server.app:create_app_from_env`` in its own process."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = ServerSettings(kb=str(root), port=self.port, rate_limit=0)
        env = {**os.environ, SETTINGS_ENV: settings.to_json()}
        command = [
            sys.executable, "-m", "uvicorn", "--factory",
            "ragkit.server.app:create_app_from_env",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- 1. ingest -------------------------------------------------------------------------


def ingest_api(client: Client, name: str, files: Sequence[Path]) -> float:
    started = time.perf_counter()
    client.create_kb(name)
    job = client.wait(client.upload(name, *files), timeout=3600, poll=0.02)
    elapsed = time.perf_counter() - started
    if job.state != "succeeded":
        raise RuntimeError(f"the upload job ended {job.state}: {job.errors}")
    return elapsed


def ingest_local(folder: Path, files: Sequence[Path]) -> tuple[float, RAG]:
    started = time.perf_counter()
    rag = RAG(folder)
    report = rag.add(list(files))
    elapsed = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"RAG.add failed on {report.failed}")
    return elapsed, rag


def bench_ingest(
    client: Client, files: Sequence[Path], work: Path, rounds: int
) -> tuple[dict[str, Any], RAG]:
    print("ingest: warm-up round (loads the model in both processes)", flush=True)
    ingest_api(client, "warmup", files)
    _, rag = ingest_local(work / "warmup", files)
    rag.close()
    api, local, ratios = [], [], []
    for i in range(rounds):
        order = ("api", "local") if i % 2 == 0 else ("local", "api")
        times: dict[str, float] = {}
        for which in order:
            before = load()
            if which == "api":
                times["api"] = ingest_api(client, f"round{i}", files)
            else:
                times["local"], rag = ingest_local(work / f"round{i}", files)
                if i < rounds - 1:
                    rag.close()
            print(f"  round {i} {which:5}: {times[which]:.2f} s (load {before:.2f})", flush=True)
        api.append(times["api"])
        local.append(times["local"])
        ratios.append(times["local"] / times["api"])
    summary = {
        "files": len(files),
        "api_s": [round(t, 3) for t in api],
        "rag_add_s": [round(t, 3) for t in local],
        "ratio_per_round": [round(r, 3) for r in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "target": ">= 0.9",
    }
    return summary, rag


# -- 2. HTTP overhead ------------------------------------------------------------------


def bench_overhead(
    url: str, key: str, kb: str, *, rag: RAG, queries: Sequence[str], k: int, n: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    local, http = [], []

    def retrieve(q: str) -> float:
        started = time.perf_counter()
        rag.retrieve(q, k)
        return time.perf_counter() - started

    with (
        httpx.Client(base_url=url, headers=headers, timeout=60) as client,
        ThreadPoolExecutor(1) as thread,
    ):
        for q in queries[:5]:  # warm both paths
            thread.submit(retrieve, q).result()
            client.post(f"/v1/kbs/{kb}/search", json={"query": q, "k": k}).raise_for_status()
        for i in range(n):
            q = queries[i % len(queries)]
            local.append(thread.submit(retrieve, q).result())
            started = time.perf_counter()
            r = client.post(f"/v1/kbs/{kb}/search", json={"query": q, "k": k})
            http.append(time.perf_counter() - started)
            r.raise_for_status()
    overhead = (pct(http, 0.5) - pct(local, 0.5)) * 1000
    return {
        "in_process": ms(local),
        "http": ms(http),
        "overhead_p50_ms": round(overhead, 2),
        "target": "<= 5 ms",
    }


# -- 3. load ---------------------------------------------------------------------------


async def _search(client: httpx.AsyncClient, kb: str, q: str, k: int) -> dict[str, float]:
    started = time.perf_counter()
    r = await client.post(f"/v1/kbs/{kb}/search", json={"query": q, "k": k})
    r.raise_for_status()
    return {"total": time.perf_counter() - started}


async def _ask(client: httpx.AsyncClient, kb: str, q: str, k: int) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    done = False
    body = {"question": q, "k": k, "stream": True}
    async with client.stream("POST", f"/v1/kbs/{kb}/ask", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("event: ") and first is None:
                first = time.perf_counter() - started
            if line == "event: done":
                done = True
            if line == "event: error":
                raise RuntimeError("the answer failed")
    if not done or first is None:
        raise RuntimeError("the stream ended without done")
    return {"total": time.perf_counter() - started, "first_event": first}


async def run_level(
    url: str, key: str, kb: str, *, what: str, clients: int, queries: Sequence[str],
    k: int, requests: int, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    call = _search if what == "search" else _ask
    results: list[dict[str, float]] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=120, limits=limits
    ) as client:
        for q in queries[: min(3, len(queries))]:  # warm the connection and the caches
            await call(client, kb, q, k)

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.monotonic() > deadline:
                    return
                try:
                    results.append(await call(client, kb, queries[i % len(queries)], k))
                except (httpx.HTTPError, RuntimeError):
                    errors += 1

        before = load()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    out: dict[str, Any] = {
        "clients": clients,
        **ms([r["total"] for r in results]),
        "rps": round(len(results) / wall, 1),
        "errors": errors,
        "load_before": round(before, 2),
        "load_after": round(load(), 2),
    }
    if what == "ask":
        first = ms([r["first_event"] for r in results])
        out["first_event_p50_ms"] = first["p50_ms"]
        out["first_event_p95_ms"] = first["p95_ms"]
    return out


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--scifact", type=Path, help="SciFact folder (corpus.jsonl, queries.jsonl)")
    data.add_argument("--folder", type=Path, help="a folder of files to serve")
    parser.add_argument("--docs", type=int, default=300, help="SciFact abstracts to index")
    parser.add_argument("--query", action="append", default=[], help="queries (with --folder)")
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="per level and phase")
    parser.add_argument("--seconds", type=float, default=60, help="at most, per level and phase")
    parser.add_argument("--overhead-n", type=int, default=200, help="queries for the overhead")
    parser.add_argument("--rounds", type=int, default=3, help="timed ingest rounds")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument(
        "--only", default="ingest,overhead,load", help="phases (without ingest: kbs built once)"
    )
    parser.add_argument("--output", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)

    work = Path(tempfile.mkdtemp(prefix="ragkit-server-load-"))
    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "load_start": round(load(), 2),
    }
    server = None
    try:
        if args.scifact:
            files = scifact_files(args.scifact, args.docs, work / "files")
            queries = scifact_queries(args.scifact, 300)
        else:
            files = sorted(p for p in args.folder.iterdir() if p.is_file())
            queries = args.query or ["What is this about?"]
        summary["data"] = {"files": len(files), "queries": len(queries)}
        root = work / "kbs"
        catalog = LocalCatalog(root)
        _, key = create_key(catalog, TENANT, ("admin",))
        catalog.close()
        server = Server(root)
        print(f"server on {server.url}; {len(files)} files, {len(queries)} queries", flush=True)
        phases = set(args.only.split(","))
        with Client(server.url, key, timeout=600) as client:
            if "ingest" in phases:
                summary["ingest"], rag = bench_ingest(client, files, work / "local", args.rounds)
                kb = f"round{args.rounds - 1}"
            else:
                kb = "served"
                ingest_api(client, kb, files)
                _, rag = ingest_local(work / "local", files)
        if "overhead" in phases:
            print("overhead: RAG.retrieve in process vs POST /search, one client", flush=True)
            summary["overhead"] = bench_overhead(
                server.url, key, kb, rag=rag, queries=queries, k=args.k, n=args.overhead_n
            )
            print(json.dumps(summary["overhead"]), flush=True)
        rag.close()
        summary["load"] = {}
        for what in ("search", "ask") if "load" in phases else ():
            rows = []
            for clients in (int(c) for c in args.levels.split(",")):
                row = asyncio.run(
                    run_level(server.url, key, kb, what=what, clients=clients,
                              queries=queries, k=args.k, requests=args.requests,
                              seconds=args.seconds)
                )  # fmt: skip
                print(what, json.dumps(row), flush=True)
                rows.append(row)
            summary["load"][what] = rows
        summary["load_end"] = round(load(), 2)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
