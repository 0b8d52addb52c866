"""``ragkit finetune generator``: LoRA fine-tune the answering LLM (RAFT examples).

ragkit finetune generator --out DIR --squad FILE [--kb KB] [--articles 0-11]
ragkit finetune generator --out DIR --pairs FILE --kb KB
ragkit finetune merge DIR [--out FILE.gguf] [--base GGUF] [--type auto]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ragkit.cli._options import add_precision

__all__ = ["add_generator_parser", "run_generator", "run_merge"]


def _articles(text: str) -> list[int]:
    """``0-11`` or ``0,3,5`` -> article indexes."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def add_generator_parser(steps: Any, kb_help: str) -> None:
    """Add ``generator`` to the ``ragkit finetune`` subcommands ``steps``."""
    gen = steps.add_parser(
        "generator",
        help="LoRA fine-tune the local LLM to quote, cite [n] and refuse (RAFT examples)",
        description="Build RAFT examples (the answering passage among distractors, or "
        "removed: then the target is the refusal) prompted exactly as LlamaCppGenerator "
        "prompts, train a LoRA adapter with peft + trl on CPU, and write it (peft format "
        "and, for a GGUF base, llama.cpp's adapter.gguf) with a report to --out.",
    )
    gen.add_argument("--out", required=True, help="the output adapter folder")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--squad", help="a SQuAD-format JSON file to make examples from")
    source.add_argument("--pairs", help='JSONL of {"question", "answer", "source"} (needs --kb)')
    gen.add_argument("--kb", help=kb_help + "; distractors are retrieved from it")
    gen.add_argument(
        "--base", help="base model: a GGUF or a local model folder (default: bundled SmolLM2)"
    )
    gen.add_argument("--articles", type=_articles, help="with --squad: article indexes, e.g. 0-11")
    gen.add_argument("--max-questions", type=int, help="at most N questions (seeded sample)")
    gen.add_argument(
        "--ks",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1, 4],
        metavar="K,K",
        help="passages per prompt, one drawn per question (1,4)",
    )
    gen.add_argument(
        "--refusal", type=float, default=0.3, help="share of questions with a refusal example"
    )
    gen.add_argument("--epochs", type=float, default=1.0)
    gen.add_argument("--steps", type=int, default=0, help="optimizer steps (0: --epochs)")
    gen.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    gen.add_argument("--rank", type=int, default=16, help="LoRA rank")
    gen.add_argument("--alpha", type=int, default=32, help="LoRA alpha")
    gen.add_argument("--accumulation", type=int, default=8, help="examples per step")
    gen.add_argument("--max-length", type=int, default=1536, help="longest example, tokens")
    gen.add_argument("--threads", type=int, help="torch CPU threads")
    add_precision(gen)
    gen.add_argument(
        "--no-checkpointing",
        action="store_true",
        help="keep the activations for the backward pass (more memory, less compute)",
    )
    gen.add_argument("--no-gguf", action="store_true", help="do not write adapter.gguf")
    gen.add_argument(
        "--merge",
        action="store_true",
        help="also write merged.gguf: the base GGUF with the adapter in its weights "
        "(no run-time adapter; ragkit finetune merge does it later)",
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--json", action="store_true", help="print the report as JSON")

    merge = steps.add_parser(
        "merge",
        help="merge a generator's LoRA adapter into a new GGUF (no run-time adapter)",
        description="Write a copy of the base GGUF with the adapter folded into its "
        "weights: no run-time LoRA products, and it loads as any model (ragkit ask --llm "
        "FILE.gguf). Adapted weights are stored as Q8_0 when the base's are below 8 bits "
        "(--type auto), so re-quantizing does not round the adapter away.",
    )
    merge.add_argument("adapter", help="the folder ragkit finetune generator wrote")
    merge.add_argument("--out", help="the merged GGUF (default: ADAPTER/merged.gguf)")
    merge.add_argument("--base", help="the base GGUF (default: the one the adapter's report names)")
    merge.add_argument(
        "--type",
        default="auto",
        choices=("auto", "same", "q8_0", "f16", "f32"),
        help="how adapted weights are stored (auto: the base's type if float or 8-bit, "
        "else q8_0; same: always the base's)",
    )
    merge.add_argument("--scale", type=float, default=1.0, help="adapter strength (1: as trained)")


def run_generator(args: argparse.Namespace) -> int:
    """Run ``ragkit finetune generator``."""
    from ragkit.errors import ConfigurationError
    from ragkit.training.generator.lora import LoraSettings
    from ragkit.training.generator.pipeline import REPORT, finetune_generator

    if args.pairs is not None and args.kb is None:
        raise ConfigurationError("--pairs needs --kb")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    settings = LoraSettings(
        r=args.rank,
        alpha=args.alpha,
        epochs=args.epochs,
        max_steps=args.steps,
        learning_rate=args.lr,
        accumulation=args.accumulation,
        max_length=args.max_length,
        seed=args.seed,
        precision=args.precision,
        checkpointing=not args.no_checkpointing,
    )
    rag = None
    if args.kb is not None:
        from ragkit.rag import RAG

        rag = RAG(args.kb)
    bars: dict[str, Any] = {}

    def progress(what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=total, desc=what, file=sys.stderr, disable=None)
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = finetune_generator(
            args.out,
            squad=args.squad,
            pairs=args.pairs,
            kb=rag,
            base=args.base,
            settings=settings,
            articles=args.articles,
            max_questions=args.max_questions,
            ks=args.ks,
            refusal=args.refusal,
            seed=args.seed,
            export_gguf=not args.no_gguf,
            merge=args.merge,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
        if rag is not None:
            rag.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(report)
    print(f"report: {args.out}/{REPORT}")
    print(f"use it: ragkit ask --kb KB --llm --lora {args.out} QUESTION")
    if report.merged_gguf:
        print(f"or:     ragkit ask --kb KB --llm {report.merged_gguf} QUESTION")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Run ``ragkit finetune merge ADAPTER``."""
    from pathlib import Path

    from ragkit.training.generator.gguf_merge import MERGED, merge_gguf

    out = Path(args.out) if args.out else Path(args.adapter) / MERGED
    path = merge_gguf(args.adapter, out, base=args.base, weight_type=args.type, scale=args.scale)
    print(f"merged: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"use it: ragkit ask --kb KB --llm {path} QUESTION")
    return 0
