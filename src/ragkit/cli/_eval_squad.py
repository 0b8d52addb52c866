"""``ragkit eval squad``: index SQuAD paragraphs, ask the questions, print a table."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TypeVar

from ragkit.backends.urls import redact
from ragkit.cli._eval_common import index_documents, table, write_results

if TYPE_CHECKING:
    from ragkit.eval import SquadQuestion

__all__ = ["add_squad_parser", "parse_articles", "run_squad", "select_articles"]

Q = TypeVar("Q", bound="SquadQuestion")


def parse_articles(spec: str) -> frozenset[int]:
    """``"12-23"`` or ``"0-5,9"`` -> the article numbers."""
    numbers: set[int] = set()
    try:
        for part in spec.split(","):
            first, dash, last = part.strip().partition("-")
            low, high = int(first), int(last) if dash else int(first)
            if low < 0 or high < low:
                raise ValueError(part)
            numbers.update(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--articles takes numbers and ranges such as 12-23 or 0-5,9, got {spec!r}"
        ) from None
    return frozenset(numbers)


def add_squad_parser(benchmarks: Any) -> None:
    """Add ``squad`` and its options to the ``eval`` benchmark parser ``benchmarks``."""
    squad = benchmarks.add_parser(
        "squad",
        help="a SQuAD v1.1/v2 JSON file (or a folder of them): answer quality",
        description="Index every paragraph as a document, ask every question (or a seeded "
        "sample) against the whole index, report gold paragraph in the top 1 and k, "
        "citation precision, answer-contains-gold, SQuAD EM/F1 and refusal rates.",
    )
    squad.add_argument("path", help="SQuAD JSON file, or a folder of them")
    squad.add_argument(
        "--kb",
        help="knowledge-base folder or postgresql:// / milvus:// URL to index into and reuse "
        "(default: in memory)",
    )
    squad.add_argument(
        "--llm",
        nargs="?",
        const="",
        metavar="GGUF",
        help="answer with a local llama.cpp model (default: the bundled SmolLM2-135M GGUF); "
        "without it, the extractive default",
    )
    squad.add_argument(
        "--threads",
        type=int,
        help="CPU threads for --llm (default: llama.cpp's choice; fewer on a busy machine)",
    )
    squad.add_argument(
        "--rerank",
        nargs="?",
        const="",
        metavar="MODEL",
        help="re-rank the retrieved chunks by how likely a local language model finds the "
        "question after each (QueryLikelihoodReranker; default model: the bundled SmolLM2)",
    )
    squad.add_argument(
        "--fetch-k",
        type=int,
        help="candidates retrieved for --rerank to order (default: --k, one forward pass each)",
    )
    squad.add_argument(
        "--articles",
        type=parse_articles,
        metavar="RANGE",
        help="ask only the questions of these articles, numbered from 0 in file order "
        "(e.g. 12-23 or 0-5,9); every paragraph is still indexed",
    )
    squad.add_argument(
        "--lora",
        metavar="DIR",
        help="with --llm: compare the base model with it adapted by this LoRA (the folder "
        "ragkit finetune generator wrote, or a LoRA .gguf), same questions",
    )
    squad.add_argument(
        "--ks",
        type=lambda text: [int(x) for x in text.split(",")],
        metavar="K,K",
        help="with --lora: each k to evaluate at, e.g. 1,4 (default: --k)",
    )
    squad.add_argument(
        "--removed",
        action="store_true",
        help="with --lora: also ask each question with its own paragraph removed and "
        "report how often the answer is refused",
    )
    squad.add_argument("--sample", type=int, help="ask a seeded random sample of N questions")
    squad.add_argument("--seed", type=int, default=0, help="seed of the sample (0)")
    squad.add_argument("--k", type=int, default=5, help="chunks per answer (5)")
    squad.add_argument(
        "--output", help="where to write the JSON results (default eval-squad-<dataset>.json)"
    )


def select_articles(questions: list[Q], articles: Collection[int] | None) -> list[Q]:
    """The questions of the articles numbered ``articles`` (from 0, in file order)."""
    if articles is None:
        return questions
    numbers = {title: n for n, title in enumerate(dict.fromkeys(q.title for q in questions))}
    return [q for q in questions if numbers[q.title] in articles]


def _asked(questions: int, args: argparse.Namespace) -> str:
    asked = f"{questions} questions"
    if args.articles is not None:
        asked += f" of {len(args.articles)} articles"
    if args.sample is not None:
        asked += f" (seeded sample, seed {args.seed})"
    return asked


def run_squad(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ragkit
    from ragkit.errors import ConfigurationError
    from ragkit.eval import SquadDataset, evaluate_answers
    from ragkit.protocols import Generator, Reranker
    from ragkit.rag import RAG

    if args.k <= 0:
        raise ConfigurationError("--k must be positive")
    if args.sample is not None and args.sample <= 0:
        raise ConfigurationError("--sample must be positive")
    if args.fetch_k is not None and (args.rerank is None or args.fetch_k < args.k):
        raise ConfigurationError("--fetch-k needs --rerank and must be at least --k")
    if getattr(args, "lora", None) is not None or getattr(args, "ks", None) or args.removed:
        from ragkit.cli._eval_squad_lora import run_squad_lora

        return run_squad_lora(args)  # base against adapted
    dataset = SquadDataset(args.path)
    documents, questions = dataset.read()
    questions = select_articles(questions, args.articles)
    generator: Generator | None = None
    if args.llm is not None:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(args.llm or None, n_threads=args.threads)
    reranker: Reranker | None = None
    if args.rerank is not None:
        from ragkit.reranking import QueryLikelihoodReranker

        reranker = QueryLikelihoodReranker(args.rerank or None)

    fetch_k = args.fetch_k or args.k
    with RAG(args.kb, generator=generator, reranker=reranker, fetch_k=fetch_k) as rag:
        index = index_documents(rag, documents)
        index["chunks"] = rag.store.count()
        total = min(args.sample or len(questions), len(questions))
        bar = tqdm(total=total, desc="asking", unit=" q", file=sys.stderr, disable=None)
        report = evaluate_answers(
            rag,
            questions,
            k=args.k,
            sample=args.sample,
            seed=args.seed,
            progress=lambda _question, _done: bar.update(1),
        )
        bar.close()
        embedder, store = rag.embedder.model_id, rag.store_name
        retrieval = rag.retrieval
        model = getattr(rag.qa.generator, "model", None) or type(rag.qa.generator).__name__
        verifier = rag.qa.verifier
    close = getattr(generator, "close", None)
    if callable(close):
        close()

    results = {
        "benchmark": "squad",
        "dataset": dataset.name,
        "path": str(dataset.path),
        "ragkit_version": ragkit.__version__,
        "generator": str(model),
        "embedder": embedder,
        "store": store,
        "retrieval_method": retrieval,
        "reranker": None if reranker is None else repr(reranker),
        "fetch_k": fetch_k if reranker is not None else None,
        "verifier": None
        if verifier is None
        else {
            "threshold": verifier.threshold,
            "decay": verifier.decay,
            "min_threshold": verifier.min_threshold,
            "min_relevance": verifier.min_relevance,
        },
        "kb": redact(str(args.kb)) if args.kb else None,
        "articles": None if args.articles is None else sorted(args.articles),
        "index": index,
        "answers": report.to_dict(),
    }
    output = write_results(args.output or f"eval-squad-{dataset.name}.json", results)

    asked = _asked(report.questions, args)
    print(f"{dataset.name}: {asked}, {index['documents']} paragraphs, {index['chunks']} chunks")
    reranked = "" if reranker is None else f", {reranker!r} over {fetch_k}"
    print(f"{model}, {embedder}, {store} store, {retrieval} retrieval{reranked}, k={args.k}")
    rows = [(name, f"{value:.4f}") for name, value in report.metrics().items()]
    rows += [
        ("latency mean", f"{report.latency_mean_ms:.0f} ms"),
        ("latency p95", f"{report.latency_p95_ms:.0f} ms"),
    ]
    print(table(rows))
    print(f"results: {os.fspath(output)}")
    return 0
