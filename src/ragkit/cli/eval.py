"""``ragkit eval``: score a RAG configuration on a benchmark, print a table, write JSON."""

from __future__ import annotations

import argparse
from typing import Any

from ragkit.cli._eval_beir import add_beir_parser, format_table, run_beir
from ragkit.cli._eval_common import CHUNKER_KEYS, EMBEDDER_KEYS, load_config, rag_options
from ragkit.cli._eval_squad import add_squad_parser, run_squad

__all__ = [
    "CHUNKER_KEYS",
    "EMBEDDER_KEYS",
    "add_eval_parser",
    "format_table",
    "load_config",
    "rag_options",
    "run_eval",
]


def add_eval_parser(sub: Any) -> None:
    """Add ``eval`` and its benchmarks to the ``ragkit`` sub-command parser ``sub``."""
    evaluate = sub.add_parser("eval", help="score retrieval on a benchmark")
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True)
    add_beir_parser(benchmarks)
    add_squad_parser(benchmarks)


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``eval`` sub-command that ``args`` names."""
    handlers = {"beir": run_beir, "squad": run_squad}
    return handlers[args.benchmark](args)
