"""``ragkit eval squad --llm --lora DIR``: the base LLM against the fine-tuned one, same
questions, each at every ``--k`` given; with ``--removed``, also the refusal rate when
the answering paragraph is filtered out of the index."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkit.cli._eval_common import index_documents, write_results

__all__ = ["lora_generator", "run_squad_lora"]


def lora_generator(llm: str | None, lora: str | None, threads: int | None) -> Any:
    """The generator for ``--llm [GGUF] --lora DIR``: llama.cpp with the adapter GGUF
    when the folder has one (or ``lora`` is a .gguf), else transformers + peft."""
    if lora is None or Path(lora).suffix == ".gguf" or (Path(lora) / "adapter.gguf").is_file():
        from ragkit.generation.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(llm or None, n_threads=threads, lora=lora)
    from ragkit.generation.transformers import TransformersGenerator

    return TransformersGenerator(llm or None, lora=lora, n_threads=threads)


def _ticker(bar: Any) -> Callable[[str, int], None]:
    """A progress callback advancing ``bar`` by one question."""
    return lambda _question, _done: bar.update(1)


def _row(name: str, values: list[str]) -> str:
    return f"  {name:<28}" + "".join(f"{v:>12}" for v in values)


def run_squad_lora(args: argparse.Namespace) -> int:
    """Run ``ragkit eval squad --llm --lora DIR [--ks 1,4] [--removed]``."""
    from tqdm import tqdm

    import ragkit
    from ragkit.cli._eval_squad import select_articles
    from ragkit.errors import ConfigurationError
    from ragkit.eval import SquadDataset, evaluate_answers
    from ragkit.eval.squad_removed import evaluate_removed
    from ragkit.rag import RAG

    if args.lora is None or args.llm is None or args.rerank is not None:
        raise ConfigurationError(
            "--lora needs --llm (and does not take --rerank); --ks and --removed go with --lora"
        )
    dataset = SquadDataset(args.path)
    documents, questions = dataset.read()
    questions = select_articles(questions, args.articles)
    ks = sorted(set(args.ks or [args.k]))
    runs: list[dict[str, Any]] = []
    for label, lora in (("base", None), ("lora", args.lora)):
        generator = lora_generator(args.llm, lora, args.threads)
        with RAG(args.kb, generator=generator) as rag:
            index = index_documents(rag, documents)
            for k in ks:
                total = min(args.sample or len(questions), len(questions))
                bar = tqdm(
                    total=total, desc=f"{label} k={k}", unit=" q", file=sys.stderr, disable=None
                )
                began = time.perf_counter()
                report = evaluate_answers(
                    rag,
                    questions,
                    k=k,
                    sample=args.sample,
                    seed=args.seed,
                    progress=_ticker(bar),
                )
                bar.close()
                run: dict[str, Any] = {
                    "label": label,
                    "generator": generator.model,
                    "k": k,
                    "answers": report.to_dict(),
                    "metrics": report.metrics(),
                    "seconds": time.perf_counter() - began,
                    "load_average": os.getloadavg()[0],
                }
                if args.removed:
                    bar = tqdm(
                        total=total, desc=f"{label} k={k} removed", file=sys.stderr, disable=None
                    )
                    removed = evaluate_removed(
                        rag,
                        questions,
                        k=k,
                        sample=args.sample,
                        seed=args.seed,
                        progress=_ticker(bar),
                    )
                    bar.close()
                    run["removed"] = removed.to_dict()
                    run["metrics"]["refusal, passage removed"] = removed.refusal_rate
                runs.append(run)
        close = getattr(generator, "close", None)
        if callable(close):
            close()

    results = {
        "benchmark": "squad-lora",
        "dataset": dataset.name,
        "path": str(dataset.path),
        "ragkit_version": ragkit.__version__,
        "lora": args.lora,
        "sample": args.sample,
        "seed": args.seed,
        "articles": None if args.articles is None else sorted(args.articles),
        "index": index,
        "runs": runs,
    }
    output = write_results(args.output or f"eval-squad-lora-{dataset.name}.json", results)
    asked = f"{runs[0]['answers']['questions']} questions"
    if args.sample is not None:
        asked += f" (seeded sample, seed {args.seed})"
    print(f"{dataset.name}: {asked}; base {runs[0]['generator']}, adapted {runs[-1]['generator']}")
    print(_row("", [f"{r['label']} k={r['k']}" for r in runs]))
    for name in runs[0]["metrics"]:
        print(_row(name, [f"{r['metrics'][name]:.4f}" for r in runs]))
    print(_row("latency mean (ms)", [f"{r['answers']['latency_mean_ms']:.0f}" for r in runs]))
    print(f"results: {os.fspath(output)}")
    return 0
