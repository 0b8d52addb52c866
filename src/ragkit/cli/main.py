"""The ``ragkit`` command: ingest files, ask questions, show what is indexed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ragkit.cli._options import add_config, load, open_rag
from ragkit.cli._render import print_report, print_sources
from ragkit.cli.eval import add_eval_parser, run_eval
from ragkit.cli.finetune import add_finetune_parser, run_finetune
from ragkit.cli.keys import add_keys_parser, run_keys
from ragkit.cli.serve import add_serve_parser, run_serve

__all__ = ["main"]

_KB_HELP = (
    "the knowledge base: a folder, postgresql://user@host/db?kb=NAME or "
    "milvus://host:port?collection=NAME (passwords from PGPASSWORD / MILVUS_TOKEN); "
    "default: the --config file's kb"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragkit", description="Question answering over your documents, with citations."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="index files and folders into a knowledge base")
    ingest.add_argument("paths", nargs="+", help="files or folders to index")
    ingest.add_argument("--kb", help=_KB_HELP)
    add_config(ingest)
    ingest.add_argument(
        "--store", choices=("chroma", "faiss", "memory"), default=None, help="for a folder"
    )
    ingest.add_argument("--include", action="append", help="glob of files to take (repeatable)")
    ingest.add_argument("--exclude", action="append", default=[], help="glob to skip (repeatable)")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.add_argument("--tenant", help="who owns the kb when it is created (default: default)")

    sync = sub.add_parser(
        "sync", help="make a knowledge base match a folder: add new, update changed, drop gone"
    )
    sync.add_argument("path", help="the folder (or file) to mirror")
    sync.add_argument("--kb", help=_KB_HELP)
    add_config(sync)
    sync.add_argument(
        "--store", choices=("chroma", "faiss", "memory"), default=None, help="for a folder"
    )
    sync.add_argument("--include", action="append", help="glob of files to take (repeatable)")
    sync.add_argument("--exclude", action="append", default=[], help="glob to skip (repeatable)")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.add_argument("--tenant", help="who owns the kb when it is created (default: default)")

    ask = sub.add_parser("ask", help="answer a question from a knowledge base")
    ask.add_argument("question")
    ask.add_argument("--kb", help=_KB_HELP)
    add_config(ask)
    ask.add_argument(
        "--k",
        type=int,
        help=(
            "chunks to answer from (default 4; 1 with the bundled SmolLM2, which cites "
            "best from one passage: docs/benchmarks/squad.md)"
        ),
    )
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument(
        "--llm",
        nargs="?",
        const="",
        metavar="GGUF",
        help="answer with a local llama.cpp model (default: the bundled SmolLM2-135M GGUF)",
    )
    ask.add_argument(
        "--threads",
        type=int,
        help="CPU threads for --llm (default: llama.cpp's choice; fewer on a busy machine)",
    )
    ask.add_argument(
        "--lora",
        metavar="PATH",
        help="with --llm: a LoRA adapter (the folder ragkit finetune generator wrote, or a "
        "LoRA .gguf); llama.cpp applies it at load",
    )
    ask.add_argument(
        "--no-verify", action="store_true", help="skip checking claims against the passages"
    )
    ask.add_argument(
        "--rerank",
        nargs="?",
        const="",
        metavar="MODEL",
        help="pick the k chunks (of at least 4 retrieved) by a local language model's "
        "likelihood of the question (QueryLikelihoodReranker; default model: the bundled "
        "SmolLM2 GGUF), or by a cross-encoder folder (ragkit finetune reranker --out)",
    )

    stats = sub.add_parser("stats", help="show what a knowledge base holds")
    stats.add_argument("--kb", help=_KB_HELP)
    add_config(stats)

    add_eval_parser(sub)
    add_serve_parser(sub, _KB_HELP)
    add_keys_parser(sub, _KB_HELP)
    add_finetune_parser(sub, _KB_HELP)
    return parser


def _quiet_third_party() -> None:
    # The CLI owns the terminal: keep model-loading progress bars out of it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with open_rag(args, store=args.store, tenant=args.tenant) as rag:
        bar = tqdm(desc="indexing", unit=" files", file=sys.stderr, disable=None)

        def progress(source: str, done: int) -> None:
            bar.set_postfix_str(os.path.basename(source)[-40:], refresh=False)
            bar.update(1)

        globs = {"include": tuple(args.include or ("**/*",)), "exclude": tuple(args.exclude)}
        try:
            if args.command == "sync":
                report = rag.sync(args.path, **globs, progress=progress)
            else:
                report = rag.add(*args.paths, **globs, progress=progress)
        finally:
            bar.close()
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report)
    return 0


def _ask(args: argparse.Namespace) -> int:
    from ragkit.types import Answer

    config = load(args)
    if args.k is None and (config is None or "k" not in config.options):
        # SmolLM2-135M answers from the wrong passage when it is given several: on 300
        # SQuAD questions its citation precision was 0.905 with 1 chunk, 0.798 with 2
        # and 0.643 with 5. A model of the user's own (--llm PATH) keeps the default.
        args.k = 1 if args.llm == "" else 4
    generator: Any = None
    if args.llm is not None:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(args.llm or None, n_threads=args.threads)
    if args.lora is not None:
        from ragkit.cli._eval_squad_lora import lora_generator
        from ragkit.errors import ConfigurationError

        if args.llm is None:
            raise ConfigurationError("--lora needs --llm")
        generator = lora_generator(args.llm, args.lora, args.threads)  # the adapted LLM
    reranker: Any = None
    if args.rerank and os.path.isfile(os.path.join(args.rerank, "config.json")):
        from ragkit.reranking import CrossEncoderReranker

        reranker = CrossEncoderReranker(args.rerank)  # ragkit finetune reranker's folder
    elif args.rerank is not None:
        from ragkit.reranking import QueryLikelihoodReranker

        reranker = QueryLikelihoodReranker(args.rerank or None)
    fetch_k = None
    if config is None or "fetch_k" not in config.options:
        fetch_k = max(args.k or 4, 4)  # a reranker picks the k best of at least 4
    with open_rag(
        args,
        generator=generator,
        reranker=reranker,
        fetch_k=fetch_k,
        verify=False if args.no_verify else None,
    ) as rag:
        if args.json:
            answer = rag.ask(args.question, k=args.k)
            print(json.dumps(answer.to_dict(), indent=2, default=str))
            return 0
        final: Answer | None = None
        for item in rag.stream(args.question, k=args.k):
            if isinstance(item, str):  # verified text: never taken back
                sys.stdout.write(item)
                sys.stdout.flush()
            else:
                final = item
        if final is None:  # pragma: no cover - the chain always ends with an Answer
            return 1
        print()
        print_sources(final)
    return 0


def _stats(args: argparse.Namespace) -> int:
    with open_rag(args) as rag:
        for key, value in rag.stats().items():
            print(f"{key:>10}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragkit`` command."""
    args = _parser().parse_args(argv)
    _quiet_third_party()
    from ragkit.errors import RagkitError

    handlers = {
        "ingest": _ingest,
        "sync": _ingest,
        "ask": _ask,
        "stats": _stats,
        "eval": run_eval,
        "serve": run_serve,
        "keys": run_keys,
        "finetune": run_finetune,
    }
    try:
        return handlers[args.command](args)
    except RagkitError as exc:
        print(f"ragkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
