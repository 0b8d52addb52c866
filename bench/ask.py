"""End-to-end ``ask`` latency: the extractive default, and the local LLM's first token.

Asks a seeded sample of SQuAD questions against an existing knowledge base (build one
with ``ragkit eval squad ../shared/bench/squad --kb KB`` or ``ragkit ingest``) and
reports, per question:

* extractive (the default ``RAG``): the whole ``ask`` (retrieval, relevance gate,
  sentence selection, citation verification), and the retrieval share of it;
* ``--llm``: the local llama.cpp model through ``rag.stream``: time to the first text
  delta from the call (end to end) and from the moment the generator starts, next to
  llama.cpp's own prefill time for the same prompt (``last_timings["prompt_ms"]``),
  and the time to the verified ``Answer``.

Every question is asked once: a second run of the same prompt would hit llama.cpp's
prompt cache and make the prefill look free.

    python bench/ask.py --kb /tmp/squad/kb --squad ../shared/bench/squad --n 200
    python bench/ask.py --kb /tmp/squad/kb --squad ../shared/bench/squad --n 20 --llm
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ragkit import RAG, Answer
from ragkit.eval import SquadDataset
from ragkit.eval.runner import percentile
from ragkit.types import Generation, ScoredChunk


class _Timed:
    """Wraps a generator; records when the chain hands it the passages."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started = 0.0

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        self.started = time.perf_counter()
        result: Generation = self.inner.generate(question, contexts)
        return result

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        self.started = time.perf_counter()
        yield from self.inner.stream(question, contexts)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


def extractive(rag: RAG, questions: Sequence[str]) -> dict[str, Any]:
    """Whole-ask and retrieval latency in ms, each question once."""
    rag.ask(questions[0])  # loads the model and the indexes; not counted
    ask_ms, retrieve_ms, refused = [], [], 0
    for question in questions:
        t0 = time.perf_counter()
        rag.retrieve(question)
        t1 = time.perf_counter()
        answer = rag.ask(question)
        t2 = time.perf_counter()
        retrieve_ms.append((t1 - t0) * 1000)
        ask_ms.append((t2 - t1) * 1000)
        refused += answer.refused
    return {
        "ask_ms": _percentiles(ask_ms),
        "retrieve_ms": _percentiles(retrieve_ms),
        "refused": refused,
    }


def llm(rag: RAG, questions: Sequence[str]) -> dict[str, Any]:
    """First-token latency against llama.cpp's prefill, each question once."""
    timed = _Timed(rag.qa.generator)
    rag.qa.generator = timed
    timed.inner.warm_up()
    rag.retrieve(questions[0])  # loads the embedder and the indexes; not counted
    rows: list[dict[str, float]] = []
    for question in questions:
        t0 = time.perf_counter()
        first = end = 0.0
        answer: Answer | None = None
        for item in rag.stream(question):
            if isinstance(item, Answer):
                answer, end = item, time.perf_counter()
            elif item and not first:
                first = time.perf_counter()
        timings = timed.inner.last_timings or {}
        if answer is None or not timed.started or not first:
            continue  # refused before generation: no prompt was run
        prefill = float(timings.get("prompt_ms", 0.0))
        rows.append(
            {
                "ttft_ms": (first - t0) * 1000,
                "ttft_generator_ms": (first - timed.started) * 1000,
                "prefill_ms": prefill,
                "prompt_tokens": float(timings.get("prompt_n", 0)),
                "answer_ms": (end - t0) * 1000,
            }
        )
        timed.started = 0.0
    # llama.cpp reports no timings for an answer the repeat guard stopped early
    timed_rows = [r for r in rows if r["prefill_ms"] > 0]
    return {
        "answered": len(rows),
        "with_prefill_timings": len(timed_rows),
        "ttft_ms": _percentiles([r["ttft_ms"] for r in rows]),
        "ttft_generator_ms": _percentiles([r["ttft_generator_ms"] for r in timed_rows]),
        "prefill_ms": _percentiles([r["prefill_ms"] for r in timed_rows]),
        "ttft_over_prefill": _percentiles(
            [r["ttft_generator_ms"] / r["prefill_ms"] for r in timed_rows]
        ),
        "answer_ms": _percentiles([r["answer_ms"] for r in rows]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", required=True, help="an existing knowledge base")
    parser.add_argument("--squad", required=True, help="SQuAD file or folder (the questions)")
    parser.add_argument("--n", type=int, default=200, help="questions asked (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", action="store_true", help="the local llama.cpp model")
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2 if installed)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()

    questions = [q.question for q in SquadDataset(args.squad).questions()]
    sample = random.Random(args.seed).sample(questions, min(args.n, len(questions)))
    generator: Any = None
    if args.llm:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(args.model)
    with RAG(args.kb, generator=generator) as rag:
        result = llm(rag, sample) if args.llm else extractive(rag, sample)
    result.update(
        questions=len(sample),
        seed=args.seed,
        generator="llm" if args.llm else "extractive",
        load_average=[round(x, 2) for x in os.getloadavg()],
    )
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
