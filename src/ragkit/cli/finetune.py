"""``ragkit finetune``: train an embedder or a reranker on a kb's data, and use it.

ragkit finetune embedder --out DIR (--pairs FILE | --kb KB --synthetic [llm|cloze])
ragkit finetune reranker --out DIR (--pairs FILE | --kb KB --synthetic [llm|cloze])
ragkit finetune pairs --kb KB --synthetic cloze --out pairs.jsonl   # step 1 alone
ragkit finetune adapter --kb KB --out DIR (--pairs FILE | --synthetic)  # the fast mode
ragkit finetune use --kb KB DIR      # re-embed with the embedder, or record the adapter
ragkit finetune generator / merge    # the answering LLM (finetune_generator.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ragkit.cli._options import add_precision
from ragkit.cli.finetune_generator import add_generator_parser, run_generator, run_merge
from ragkit.training.promote import CONFIDENCE

__all__ = ["add_finetune_parser", "run_finetune"]


def _common(parser: argparse.ArgumentParser, kb_help: str, *, defaults: dict[str, Any]) -> None:
    parser.add_argument("--out", required=True, help="the output model folder")
    parser.add_argument("--pairs", help="JSONL training pairs: {query, positive, negatives?}")
    parser.add_argument("--kb", help=kb_help + "; hard negatives come from it")
    parser.add_argument(
        "--synthetic",
        nargs="?",
        const="llm",
        choices=("llm", "cloze"),
        help="make pairs from the kb's chunks: questions by the bundled SmolLM2 (llm, "
        "the default) or a sentence of the chunk as the query (cloze, no model)",
    )
    parser.add_argument("--base", help="the starting model (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=int, default=defaults["epochs"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=defaults["lr"], help="peak learning rate")
    parser.add_argument(
        "--negatives", type=int, default=defaults["negatives"], help="hard negatives per pair"
    )
    parser.add_argument("--max-chunks", type=int, help="synthetic pairs from at most N chunks")
    parser.add_argument(
        "--heldout", type=float, default=0.1, help="share of pairs held out, by document"
    )
    parser.add_argument(
        "--min-gain", type=float, default=0.0, help="held-out nDCG@10 gain needed to promote"
    )
    parser.add_argument(
        "--confidence", type=float, default=CONFIDENCE,
        help="how sure the held-out gain must be (bootstrap over its queries; 0: the means "
        f"alone decide; default {CONFIDENCE})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    add_precision(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_finetune_parser(sub: Any, kb_help: str) -> None:
    """Add ``finetune`` and its subcommands to the ``ragkit`` subparsers ``sub``."""
    finetune = sub.add_parser(
        "finetune",
        help="fine-tune the embedder or train a reranker on a kb's own data (ragkit[train])",
    )
    steps = finetune.add_subparsers(dest="finetune_command", required=True)
    embedder = steps.add_parser("embedder", help="fine-tune the embedding model")
    _common(embedder, kb_help, defaults={"epochs": 2, "lr": 2e-5, "negatives": 1})
    embedder.add_argument("--loss", choices=("mnrl", "gist"), default="mnrl")
    reranker = steps.add_parser("reranker", help="train a cross-encoder reranker")
    _common(reranker, kb_help, defaults={"epochs": 1, "lr": 5e-5, "negatives": 3})
    add_generator_parser(steps, kb_help)  # generator and merge (finetune_generator.py)

    adapter = steps.add_parser(
        "adapter",
        help="the fast mode: fit a query adapter on the kb's cached vectors (no re-embedding)",
    )
    adapter.add_argument("--kb", required=True, help=kb_help)
    adapter.add_argument("--out", required=True, help="the output folder")
    adapter.add_argument("--pairs", help="JSONL training pairs: {query, positive, negatives?}")
    adapter.add_argument("--synthetic", nargs="?", const="llm", choices=("llm", "cloze"))
    adapter.add_argument("--max-chunks", type=int, help="synthetic pairs from at most N chunks")
    adapter.add_argument("--epochs", type=int, default=20, help="passes over the pairs per fit")
    adapter.add_argument("--heldout", type=float, default=0.1, help="share held out, by document")
    adapter.add_argument("--min-gain", type=float, default=0.0)
    adapter.add_argument("--confidence", type=float, default=CONFIDENCE)
    adapter.add_argument("--seed", type=int, default=0)
    adapter.add_argument("--json", action="store_true", help="print the report as JSON")

    pairs = steps.add_parser("pairs", help="write synthetic training pairs (step 1 alone)")
    pairs.add_argument("--kb", required=True, help=kb_help)
    pairs.add_argument("--out", required=True, help="the JSONL file to write")
    pairs.add_argument("--synthetic", choices=("llm", "cloze"), default="llm")
    pairs.add_argument("--max-chunks", type=int)
    pairs.add_argument("--seed", type=int, default=0)

    use = steps.add_parser(
        "use",
        help="make a fine-tuned embedder the kb's embedder (re-embeds its chunks), or "
        "apply a query adapter to its queries (nothing re-embedded)",
    )
    use.add_argument(
        "model", nargs="?", help="the folder ragkit finetune embedder or adapter wrote"
    )
    use.add_argument("--kb", required=True, help=kb_help)
    use.add_argument(
        "--no-adapter", action="store_true", help="stop applying the kb's query adapter"
    )


class _Bars:
    """One tqdm bar per step name (the CLI owns the terminal)."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(what)
        if bar is None:
            bar = self.bars[what] = tqdm(total=total, desc=what, file=sys.stderr, disable=None)
        bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _open_kb(location: str, model: str | None = None) -> Any:
    """The kb opened with the embedder it records: the default, its recorded model
    folder, a local model folder named as its model id, or (an interrupted
    ``finetune use``) the new ``model``."""
    from ragkit.backends import open_backend
    from ragkit.embeddings import SentenceTransformerEmbedder
    from ragkit.errors import EmbedderMismatchError
    from ragkit.rag import RAG

    try:
        return RAG(location)
    except EmbedderMismatchError:
        backend = open_backend(location, keyword=False)
        try:
            manifest = backend.read_manifest()
        finally:
            backend.close()
        if manifest is None:  # pragma: no cover - a mismatch needs a manifest
            raise
        if model is not None and manifest.reembedding:
            return RAG(location, embedder=SentenceTransformerEmbedder(model))
        if Path(manifest.embedder_model).is_dir():
            return RAG(location, embedder=SentenceTransformerEmbedder(manifest.embedder_model))
        raise


def _train(args: argparse.Namespace) -> int:
    from ragkit.errors import ConfigurationError
    from ragkit.training.pipeline import finetune_embedder, finetune_reranker
    from ragkit.training.train import TrainConfig

    if (args.pairs is None) == (args.synthetic is None):
        raise ConfigurationError("give --pairs FILE, or --kb KB --synthetic")
    if args.synthetic is not None and args.kb is None:
        raise ConfigurationError("--synthetic needs --kb")
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        negatives=args.negatives,
        loss=getattr(args, "loss", "mnrl"),
        seed=args.seed,
        precision=args.precision,
    )
    run = finetune_embedder if args.finetune_command == "embedder" else finetune_reranker
    bars = _Bars()
    rag = _open_kb(args.kb) if args.kb else None
    try:
        report = run(
            args.out,
            pairs=args.pairs,
            kb=rag,
            synthetic=args.synthetic,
            base=args.base,
            config=config,
            heldout_fraction=args.heldout,
            max_chunks=args.max_chunks,
            min_gain=args.min_gain,
            confidence=args.confidence,
            progress=bars,
        )
    finally:
        bars.close()
        if rag is not None:
            rag.close()
    kb = args.kb or "KB"
    if args.finetune_command == "embedder":
        use = f"ragkit finetune use --kb {kb} {args.out}"
    else:
        use = f"ragkit ask --kb {kb} --rerank {args.out} QUESTION"
    return _print_report(report, args, use)


def _print_report(report: Any, args: argparse.Namespace, use: str) -> int:
    """The report as JSON (``--json``), or in words with how to use a promoted model."""
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(report)
    print(f"report: {args.out}/finetune-report.json")
    if report.promoted:
        print(f"use it: {use}")
    return 0


def _adapter(args: argparse.Namespace) -> int:
    from ragkit.errors import ConfigurationError
    from ragkit.training.fast import finetune_adapter

    if (args.pairs is None) == (args.synthetic is None):
        raise ConfigurationError("give --pairs FILE, or --synthetic")
    bars = _Bars()
    with _open_kb(args.kb) as rag:
        try:
            report = finetune_adapter(
                args.out, kb=rag, pairs=args.pairs, synthetic=args.synthetic,
                max_chunks=args.max_chunks, epochs=args.epochs,
                heldout_fraction=args.heldout, min_gain=args.min_gain,
                confidence=args.confidence, seed=args.seed, progress=bars,
            )  # fmt: skip
        finally:
            bars.close()
    return _print_report(report, args, f"ragkit finetune use --kb {args.kb} {args.out}")


def _pairs(args: argparse.Namespace) -> int:
    from ragkit.training.pairs import write_pairs
    from ragkit.training.pipeline import make_pairs

    bars = _Bars()
    with _open_kb(args.kb) as rag:
        try:
            pairs = make_pairs(
                kb=rag,
                synthetic=args.synthetic,
                max_chunks=args.max_chunks,
                seed=args.seed,
                progress=bars,
            )
        finally:
            bars.close()
    n = write_pairs(pairs, args.out)
    print(f"{n} pairs written to {args.out}")
    return 0


def _use(args: argparse.Namespace) -> int:
    from ragkit.embeddings import SentenceTransformerEmbedder
    from ragkit.errors import ConfigurationError
    from ragkit.training.promote import model_record

    if (args.model is None) != args.no_adapter:
        raise ConfigurationError("give the model or adapter folder, or --no-adapter")
    if args.no_adapter:
        _forget_adapter(args.kb)  # without opening the kb: its adapter may be gone
        print(f"{args.kb}: queries go through no query adapter now")
        return 0
    if model_record(args.model).get("kind") == "adapter":
        with _open_kb(args.kb) as rag:
            rag.use_query_adapter(args.model)
        print(f"{args.kb}: queries now go through the query adapter {args.model} "
              "(no vector rewritten)")  # fmt: skip
        return 0
    bars = _Bars()
    embedder = SentenceTransformerEmbedder(args.model)
    with _open_kb(args.kb, args.model) as rag:
        try:
            report = rag.reembed(embedder, progress=bars)
        finally:
            bars.close()
    print(
        f"{args.kb}: {report['chunks']} chunks now embedded with {report['model_id']} "
        f"({report['embedded']} computed, the rest from the cache)"
    )
    return 0


def _forget_adapter(location: str) -> None:
    """Record in the kb that its queries go through no adapter (``--no-adapter``)."""
    from ragkit.backends import open_backend

    backend = open_backend(location, keyword=False)
    try:
        with backend.writing():
            manifest = backend.read_manifest()
            if manifest is not None and manifest.query_adapter:
                manifest.query_adapter = ""
                backend.write_manifest(manifest)
    finally:
        backend.close()


def run_finetune(args: argparse.Namespace) -> int:
    """Run ``ragkit finetune ...``."""
    if args.finetune_command == "generator":
        return run_generator(args)
    if args.finetune_command == "merge":
        return run_merge(args)
    if args.finetune_command == "pairs":
        return _pairs(args)
    if args.finetune_command == "use":
        return _use(args)
    if args.finetune_command == "adapter":
        return _adapter(args)
    return _train(args)
