"""``ragkit eval``: score a RAG configuration on a benchmark, print a table, write JSON."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.eval import RetrievalReport
    from ragkit.rag import RAG
    from ragkit.types import Document

__all__ = ["add_eval_parser", "format_table", "load_config", "rag_options", "run_eval"]

#: Config keys that set up the default :class:`~ragkit.chunking.RecursiveChunker`.
CHUNKER_KEYS = ("chunk_size", "chunk_overlap", "length", "encoding", "markdown", "keep_separator")

#: Config keys of an ``embedder`` table: SentenceTransformerEmbedder arguments.
EMBEDDER_KEYS = ("model", "model_id", "device", "batch_size", "query_prefix", "document_prefix")

# RAG arguments that take components, not plain values (``path`` comes from --kb).
_NOT_CONFIGURABLE = ("path", "chunker", "loader", "retriever", "generator")

# The order of the table; measures not listed here follow in report order.
_LABELS = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR", "map": "MAP"}


def add_eval_parser(sub: Any) -> None:
    """Add ``eval`` and its benchmarks to the ``ragkit`` sub-command parser ``sub``."""
    evaluate = sub.add_parser("eval", help="score retrieval on a benchmark")
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True)

    beir = benchmarks.add_parser(
        "beir",
        help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
        description="Index a BEIR corpus, run the split's queries, report nDCG@10, "
        "recall@10/@k, MRR@10, MAP@10 and latency.",
    )
    beir.add_argument("path", help="the BEIR dataset folder")
    beir.add_argument("--split", default="test", help="qrels split to score (default test)")
    beir.add_argument(
        "--kb", help="knowledge-base folder to index into and reuse (default: in memory)"
    )
    beir.add_argument(
        "--config", help='JSON or TOML file of RAG settings, e.g. {"chunk_size": 160}'
    )
    beir.add_argument(
        "--retrieval",
        choices=("dense", "keyword", "hybrid"),
        help="retrieval method (overrides the config file)",
    )
    beir.add_argument("--k", type=int, default=100, help="documents ranked per query (100)")
    beir.add_argument("--chunk-k", type=int, help="chunks retrieved per query (default 3 x --k)")
    beir.add_argument("--limit", type=int, help="score only the first N queries of the split")
    beir.add_argument(
        "--output", help="where to write the JSON results (default eval-<dataset>-<split>.json)"
    )

    squad = benchmarks.add_parser(
        "squad",
        help="a SQuAD v1.1/v2 JSON file (or a folder of them): answer quality",
        description="Index every paragraph as a document, ask every question (or a seeded "
        "sample) against the whole index, report gold paragraph in the top 1 and k, "
        "citation precision, answer-contains-gold, SQuAD EM/F1 and refusal rates.",
    )
    squad.add_argument("path", help="SQuAD JSON file, or a folder of them")
    squad.add_argument(
        "--kb", help="knowledge-base folder to index into and reuse (default: in memory)"
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
    squad.add_argument("--sample", type=int, help="ask a seeded random sample of N questions")
    squad.add_argument("--seed", type=int, default=0, help="seed of the sample (0)")
    squad.add_argument("--k", type=int, default=5, help="chunks per answer (5)")
    squad.add_argument(
        "--output", help="where to write the JSON results (default eval-squad-<dataset>.json)"
    )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` file of settings into a dict.

    Raises:
        ConfigurationError: the file cannot be read or parsed, or is not a table.
    """
    from ragkit.errors import ConfigurationError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigurationError(f"config file {path} must end in .json or .toml")
    parse: Any = json.loads
    if suffix == ".toml":
        try:
            parse = importlib.import_module("tomllib").loads
        except ModuleNotFoundError:  # Python 3.10
            try:
                parse = importlib.import_module("tomli").loads
            except ModuleNotFoundError as exc:
                raise ConfigurationError(
                    f"{path}: reading TOML needs Python 3.11+ or `pip install tomli`; "
                    "or write the config as JSON"
                ) from exc
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"config file {path} cannot be read ({exc.strerror})") from exc
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        raise ConfigurationError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold an object of settings")
    return data


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def rag_options(config: Mapping[str, Any], retrieval: str | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`~ragkit.RAG` from plain settings.

    ``chunk_size``, ``chunk_overlap`` (and the other :data:`CHUNKER_KEYS`) build a
    :class:`~ragkit.chunking.RecursiveChunker`; ``embedder`` (a model name, or a table
    of :data:`EMBEDDER_KEYS`) a :class:`~ragkit.embeddings.SentenceTransformerEmbedder`;
    every other key must be a ``RAG`` argument that takes a plain value (``store``,
    ``retrieval``, ``cache``, ...). ``retrieval``, when given, overrides the config's.

    Raises:
        ConfigurationError: a key is unknown, or its value is not a plain value.
    """
    from ragkit.errors import ConfigurationError
    from ragkit.rag import RAG

    settings = dict(config)
    if retrieval is not None:
        settings["retrieval"] = retrieval
    accepted = set(inspect.signature(RAG).parameters) - set(_NOT_CONFIGURABLE) - {"embedder"}
    options: dict[str, Any] = {}

    chunking = {key: settings.pop(key) for key in CHUNKER_KEYS if key in settings}
    if chunking:
        from ragkit.chunking import RecursiveChunker

        options["chunker"] = RecursiveChunker(**chunking)

    embedder = settings.pop("embedder", None)
    if embedder is not None:
        if isinstance(embedder, str):
            embedder = {"model": embedder}
        if not isinstance(embedder, dict) or set(embedder) - set(EMBEDDER_KEYS):
            raise ConfigurationError(
                f"embedder must be a model name or a table with keys among "
                f"{', '.join(EMBEDDER_KEYS)}; got {embedder!r}"
            )
        from ragkit.embeddings import SentenceTransformerEmbedder

        options["embedder"] = SentenceTransformerEmbedder(**embedder)

    for key, value in settings.items():
        if key not in accepted:
            hint = (
                "this version of ragkit's RAG has no such argument"
                if key not in _NOT_CONFIGURABLE
                else "it takes a component, which a config file cannot hold"
            )
            raise ConfigurationError(
                f"config setting {key!r} cannot be used: {hint}; settings: "
                f"{', '.join(sorted(accepted | set(CHUNKER_KEYS) | {'embedder'}))}"
            )
        if not _plain(value):
            raise ConfigurationError(f"config setting {key!r} must be a plain value, got {value!r}")
        options[key] = value
    return options


def _index(rag: RAG, documents: Iterable[Document], batch: int = 1000) -> dict[str, Any]:
    """Add the corpus in batches, with a progress bar; return what happened."""
    from tqdm import tqdm

    totals: dict[str, Any] = {
        "documents": 0,
        "added": 0,
        "unchanged": 0,
        "chunks_added": 0,
        "failed": [],
        "seconds": 0.0,
    }
    bar = tqdm(desc="indexing", unit=" docs", file=sys.stderr, disable=None)

    def flush(pending: list[Document]) -> None:
        report = rag.add(pending, progress=lambda _source, _done: bar.update(1))
        totals["documents"] += len(pending)
        totals["added"] += len(report.added) + len(report.updated)
        totals["unchanged"] += len(report.unchanged)
        totals["chunks_added"] += report.chunks_added
        totals["failed"] += [{"source": f.source, "reason": f.reason} for f in report.failed]
        totals["seconds"] += report.seconds
        pending.clear()

    pending: list[Document] = []
    for document in documents:
        pending.append(document)
        if len(pending) >= batch:
            flush(pending)
    flush(pending)
    bar.close()
    return totals


def _label(measure: str) -> str:
    name, _, cutoff = measure.partition("@")
    return f"{_LABELS.get(name, name)}@{cutoff}"


def format_table(report: RetrievalReport) -> str:
    """The metrics and speed of ``report`` as an aligned two-column table."""
    rows = [(_label(m), f"{v:.4f}") for m, v in report.metrics.items()]
    rows += [
        ("queries/s", f"{report.queries_per_second:.1f}"),
        ("latency p50", f"{report.latency_p50_ms:.1f} ms"),
        ("latency p95", f"{report.latency_p95_ms:.1f} ms"),
    ]
    left = max(len(r[0]) for r in rows)
    right = max(len(r[1]) for r in rows)
    return "\n".join(f"  {name:<{left}}  {value:>{right}}" for name, value in rows)


def _beir(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ragkit
    from ragkit.errors import ConfigurationError
    from ragkit.eval import BeirDataset, evaluate_retrieval
    from ragkit.rag import RAG

    if args.k <= 0 or (args.chunk_k is not None and args.chunk_k <= 0):
        raise ConfigurationError("--k and --chunk-k must be positive")
    if args.limit is not None and args.limit <= 0:
        raise ConfigurationError("--limit must be positive")
    dataset = BeirDataset(args.path)
    queries, qrels = dataset.split(args.split)
    if args.limit is not None:
        queries = dict(list(queries.items())[: args.limit])
    config = load_config(args.config) if args.config else {}
    options = rag_options(config, args.retrieval)

    with RAG(args.kb, **options) as rag:
        index = _index(rag, dataset.corpus())
        index["chunks"] = rag.store.count()
        if index["failed"]:
            print(
                f"ragkit: warning: {len(index['failed'])} documents were not indexed, e.g. "
                f"{index['failed'][0]['source']}: {index['failed'][0]['reason']}",
                file=sys.stderr,
            )
        bar = tqdm(total=len(queries), desc="querying", unit=" q", file=sys.stderr, disable=None)
        report = evaluate_retrieval(
            rag,
            queries,
            qrels,
            k=args.k,
            chunk_k=args.chunk_k,
            progress=lambda _query, _done: bar.update(1),
        )
        bar.close()
        embedder, store = rag.embedder.model_id, rag.store_name
        retrieval = getattr(rag, "retrieval", "dense")  # RAG before hybrid retrieval: dense

    settings = {**config, **({"retrieval": args.retrieval} if args.retrieval else {})}
    results = {
        "benchmark": "beir",
        "dataset": dataset.name,
        "path": str(dataset.path),
        "split": args.split,
        "ragkit_version": ragkit.__version__,
        "config": settings,
        "embedder": embedder,
        "store": store,
        "retrieval_method": retrieval,
        "kb": str(args.kb) if args.kb else None,
        "index": index,
        "retrieval": report.to_dict(),
    }
    output = Path(args.output or f"eval-{dataset.name}-{args.split}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    setup = [embedder, f"{store} store", f"{retrieval} retrieval"]
    setup += [f"{key}={value}" for key, value in settings.items() if key != "retrieval"]
    print(
        f"{dataset.name} ({args.split}): {report.queries} queries, {index['documents']} "
        f"documents, {index['chunks']} chunks"
    )
    print(", ".join(setup))
    print(format_table(report))
    print(f"results: {os.fspath(output)}")
    return 0


def _squad(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ragkit
    from ragkit.errors import ConfigurationError
    from ragkit.eval import SquadDataset, evaluate_answers
    from ragkit.protocols import Generator
    from ragkit.rag import RAG

    if args.k <= 0:
        raise ConfigurationError("--k must be positive")
    if args.sample is not None and args.sample <= 0:
        raise ConfigurationError("--sample must be positive")
    dataset = SquadDataset(args.path)
    documents, questions = dataset.read()
    generator: Generator | None = None
    if args.llm is not None:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(args.llm or None, n_threads=args.threads)

    with RAG(args.kb, generator=generator) as rag:
        index = _index(rag, documents)
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
        "verifier": None
        if verifier is None
        else {
            "threshold": verifier.threshold,
            "decay": verifier.decay,
            "min_threshold": verifier.min_threshold,
            "min_relevance": verifier.min_relevance,
        },
        "kb": str(args.kb) if args.kb else None,
        "index": index,
        "answers": report.to_dict(),
    }
    output = Path(args.output or f"eval-squad-{dataset.name}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    asked = f"{report.questions} questions"
    if args.sample is not None:
        asked += f" (seeded sample, seed {args.seed})"
    print(f"{dataset.name}: {asked}, {index['documents']} paragraphs, {index['chunks']} chunks")
    print(f"{model}, {embedder}, {store} store, {retrieval} retrieval, k={args.k}")
    rows = [(name, f"{value:.4f}") for name, value in report.metrics().items()]
    rows += [
        ("latency mean", f"{report.latency_mean_ms:.0f} ms"),
        ("latency p95", f"{report.latency_p95_ms:.0f} ms"),
    ]
    left = max(len(r[0]) for r in rows)
    right = max(len(r[1]) for r in rows)
    print("\n".join(f"  {name:<{left}}  {value:>{right}}" for name, value in rows))
    print(f"results: {os.fspath(output)}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``eval`` sub-command that ``args`` names."""
    handlers = {"beir": _beir, "squad": _squad}
    return handlers[args.benchmark](args)
