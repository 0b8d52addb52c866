"""Fine-tuning benchmarks (issue 15): SciFact embedder (supervised and synthetic), the
query adapter, and a SQuAD reranker (its code is in finetune_squad.py). Figures go to
docs/benchmarks/finetune.md.

Everything is chosen on training data: the held-out split the pipeline keeps the best
epoch and decides promotion on is cut from the *training* pairs (by document); the
test split is only read by the final scoring (``--score``).

    # the base kb (bundled MiniLM, default chunker), built once by the eval command
    ragkit eval beir ../shared/bench/scifact --kb /tmp/ft/scifact-kb
    # supervised: pairs from qrels/train.tsv, fine-tune, re-embed a copy, score on test
    python bench/finetune.py supervised --data ../shared/bench/scifact \\
        --kb /tmp/ft/scifact-kb --work /tmp/ft/sup
    # synthetic pairs only (inverse cloze from the kb's chunks), one run per seed
    python bench/finetune.py synthetic --data ../shared/bench/scifact \\
        --kb /tmp/ft/scifact-kb --work /tmp/ft/syn --seeds 0,1,2
    # ... judged by SmolLM2 questions about other documents instead of a cloze split
    python bench/finetune.py synthetic --data ../shared/bench/scifact \\
        --kb /tmp/ft/scifact-kb --work /tmp/ft/syn-judge --seeds 6,7,8 --judge-by llm
    # the fast mode: a linear query adapter on the cached vectors (no re-embedding)
    python bench/finetune.py adapter --data ../shared/bench/scifact \\
        --kb /tmp/ft/scifact-kb --work /tmp/ft/adapter
    # reranker trained on SQuAD articles 00-11, scored on 12-23
    python bench/finetune.py squad --squad ../shared/bench/squad/dev-v1.1-articles-00-23.json \\
        --work /tmp/ft/squad
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import finetune_squad
import numpy as np
from _positives import best_chunk_pairs
from _progress import load, progress_printer

from ragkit import RAG
from ragkit.cli._options import add_precision
from ragkit.embeddings import SentenceTransformerEmbedder
from ragkit.eval import BeirDataset, evaluate_retrieval
from ragkit.training import TrainConfig
from ragkit.training.pairs import Pair, kb_chunks, write_pairs
from ragkit.training.pipeline import finetune_embedder

RESULTS = Path(__file__).parent / "results"


def supervised_pairs(rag: RAG, data: BeirDataset, split: str = "train") -> list[Pair]:
    """One pair per (query, relevant document): the document's chunk the base model
    ranks highest for the query is the positive (SciFact abstracts are 1-7 chunks)."""
    queries, qrels = data.split(split)
    wanted = [
        (queries[qid], doc_id)
        for qid, docs in qrels.items()
        if queries.get(qid)
        for doc_id, grade in docs.items()
        if grade >= 1
    ]
    return best_chunk_pairs(rag, wanted)


def score(kb: str | Path, data: BeirDataset, embedder: Any = None) -> dict[str, float]:
    """Test-split nDCG@10 of the kb, dense and hybrid (RAG defaults, k=100)."""
    queries, qrels = data.split("test")
    out = {}
    for mode in ("dense", "hybrid"):
        began = time.perf_counter()
        options: dict[str, Any] = {"retrieval": mode}
        if embedder is not None:
            options["embedder"] = embedder
        with RAG(kb, **options) as rag:
            report = evaluate_retrieval(rag, queries, qrels)
        out[mode] = round(report.metrics["ndcg@10"], 4)
        print(
            f"  {mode}: nDCG@10 {out[mode]:.4f} ({time.perf_counter() - began:.0f} s, "
            f"load {load()})",
            file=sys.stderr,
            flush=True,
        )
    return out


def copy_kb(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))


def run_embedder(
    args: argparse.Namespace,
    name: str,
    pairs: Any,
    synthetic: str | None,
    seed: int,
    *,
    eval_pairs: list[Pair] | None = None,
) -> dict[str, Any]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"model-{name}"
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        negatives=args.negatives,
        loss=args.loss,
        seed=seed,
        precision=args.precision,
    )
    began = time.perf_counter()
    with RAG(args.kb) as rag:
        report = finetune_embedder(
            out,
            pairs=pairs,
            kb=rag,
            synthetic=synthetic,  # type: ignore[arg-type]
            config=config,
            max_chunks=None if pairs is not None else args.max_chunks,
            eval_pairs=eval_pairs,
            heldout_fraction=args.heldout_fraction,
            heldout_pool=args.heldout_pool,
            progress=progress_printer(),
        )
    finetune_seconds = time.perf_counter() - began
    print(report, file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "name": name,
        "report": report.to_dict(),
        "finetune_seconds": round(finetune_seconds, 1),
        "load_after_finetune": load(),
        "heldout_fraction": args.heldout_fraction,
        "heldout_pool": args.heldout_pool,
    }
    if args.score:
        kb_copy = work / f"kb-{name}"
        began = time.perf_counter()
        copy_kb(Path(args.kb), kb_copy)
        with RAG(kb_copy) as rag:
            result["reembed"] = rag.reembed(
                SentenceTransformerEmbedder(out), progress=progress_printer()
            )
        result["reembed_seconds"] = round(time.perf_counter() - began, 1)
        result["test"] = score(kb_copy, BeirDataset(args.data))
        result["load_after_score"] = load()
        if not args.keep:
            shutil.rmtree(kb_copy)
    result["wall_seconds"] = round(time.perf_counter() - began + finetune_seconds, 1)
    return result


def cmd_supervised(args: argparse.Namespace) -> dict[str, Any]:
    data = BeirDataset(args.data)
    with RAG(args.kb) as rag:
        pairs = supervised_pairs(rag, data)
    path = Path(args.work) / "scifact-train-pairs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pairs(pairs, path)
    print(f"{len(pairs)} pairs from qrels/train.tsv -> {path}", file=sys.stderr)
    return run_embedder(args, "supervised", str(path), None, args.seed)


def llm_judged(args: argparse.Namespace, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Cloze pairs to train on and SmolLM2-written questions to judge by, from disjoint
    documents: ``--judge-docs`` documents drawn with ``seed`` give one chunk each to the
    question writer (round-trip filtered as ``synthetic_pairs`` does, cached in WORK);
    the cloze pairs come from ``--max-chunks`` chunks of the other documents. No qrels."""
    from ragkit.generation import LlamaCppGenerator
    from ragkit.training.pairs import inverse_cloze_pairs, read_pairs, synthetic_pairs

    rng = random.Random(seed)
    with RAG(args.kb) as rag:
        chunks = kb_chunks(rag)
        by_doc: dict[str, list[Any]] = {}
        for chunk in chunks:
            by_doc.setdefault(str(chunk.document_id), []).append(chunk)
        judge_docs = set(rng.sample(sorted(by_doc), args.judge_docs))
        depth = "" if args.judge_top_k == 3 else f"-top{args.judge_top_k}"
        cache = Path(args.work) / f"judge-llm-seed{seed}{depth}.jsonl"
        if cache.exists():
            judge = read_pairs(cache)
        else:
            picked = [rng.choice(by_doc[doc]) for doc in sorted(judge_docs)]
            llm = LlamaCppGenerator(max_tokens=48, temperature=0.7, seed=seed, n_threads=1)
            judge = synthetic_pairs(
                picked, llm, rag, top_k=args.judge_top_k, progress=progress_printer()
            )
            llm.close()
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_pairs(judge, cache)
    rest = [c for c in chunks if str(c.document_id) not in judge_docs]
    picked = sorted(random.Random(seed).sample(rest, args.max_chunks), key=lambda c: c.id)
    train = inverse_cloze_pairs(picked, seed=seed)
    print(f"seed {seed}: {len(train)} cloze pairs, {len(judge)} judge questions from "
          f"{len(judge_docs)} other documents", file=sys.stderr, flush=True)  # fmt: skip
    return train, judge


def cmd_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        name = f"{args.method}-seed{seed}"
        if args.judge_by == "llm":
            train, judge = llm_judged(args, seed)
            run = run_embedder(args, f"{name}-llm-judge", train, None, seed, eval_pairs=judge)
            run["judge"] = {
                "by": "llm", "documents": args.judge_docs, "questions": len(judge),
                "top_k": args.judge_top_k,
            }  # fmt: skip
            runs.append(run)
        else:
            runs.append(run_embedder(args, name, None, args.method, seed))
    out: dict[str, Any] = {"runs": runs}
    gains = [r["test"]["hybrid"] - args.base_hybrid for r in runs if "test" in r]
    if gains:
        out["hybrid_gain_mean"] = float(np.mean(gains))
        out["hybrid_gain_std"] = float(np.std(gains, ddof=1)) if len(gains) > 1 else 0.0
    return out


def cmd_adapter(args: argparse.Namespace) -> dict[str, Any]:
    """The fast mode as ``ragkit finetune adapter`` runs it, on the supervised pairs:
    fitted on the training split, judged on the held-out split (by document, with the
    bootstrap bound), and scored on test only when promoted (no re-embedding)."""
    from ragkit.embeddings.adapted import AdaptedEmbedder, load_query_adapter
    from ragkit.training.fast import finetune_adapter

    data = BeirDataset(args.data)
    out = Path(args.work) / "adapter"
    began = time.perf_counter()
    with RAG(args.kb) as rag:
        pairs = supervised_pairs(rag, data)
        report = finetune_adapter(
            out, kb=rag, pairs=pairs, heldout_fraction=args.heldout_fraction,
            heldout_pool=args.heldout_pool, seed=args.seed,
        )  # fmt: skip
    print(f"  {report}", file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "report": report.to_dict(),
        "run_seconds": round(time.perf_counter() - began, 1),
        "load_after_fit": load(),
    }
    if report.promoted and args.score:
        adapter = load_query_adapter(out)
        embedder = AdaptedEmbedder(SentenceTransformerEmbedder(args.model), adapter)
        result["test"] = score(args.kb, data, embedder=embedder)
    else:
        result["test"] = f"not scored: {report.reason}"
    return result


def add_kb_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """The options of the SciFact commands (supervised, synthetic, adapter)."""
    p.add_argument("--data", required=True)
    p.add_argument("--kb", required=True, help="the base kb (built by ragkit eval beir)")
    p.add_argument("--work", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--negatives", type=int, default=1)
    p.add_argument("--loss", default="mnrl", choices=("mnrl", "gist"))
    p.add_argument("--seed", type=int, default=0)
    add_precision(p)
    p.add_argument("--max-chunks", type=int)
    p.add_argument(
        "--heldout-fraction", type=float, default=0.1,
        help="share of the training pairs held out, by document",
    )  # fmt: skip
    p.add_argument(
        "--heldout-pool", type=int, default=1000,
        help="passages the held-out queries are ranked among (more: a harder test)",
    )  # fmt: skip
    p.add_argument("--no-score", dest="score", action="store_false")
    p.add_argument("--keep", action="store_true", help="keep the re-embedded kb copies")
    p.add_argument("--output")
    if name == "adapter":
        p.add_argument(
            "--model", help="the kb's embedder folder, when it is a fine-tuned one (scoring)"
        )
    if name == "synthetic":
        p.add_argument("--seeds", default="0,1,2")
        p.add_argument("--method", default="cloze", choices=("cloze", "llm"))
        p.add_argument(
            "--judge-by", default="split", choices=("split", "llm"),
            help="held-out judge: a split of the training pairs by document, or SmolLM2 "
            "questions about --judge-docs other documents (cloze training only)",
        )  # fmt: skip
        p.add_argument("--judge-docs", type=int, default=150)
        p.add_argument(
            "--judge-top-k", type=int, default=3,
            help="keep a judge question when the base kb returns its chunk in this top k",
        )  # fmt: skip
        p.add_argument("--base-hybrid", type=float, default=0.7387)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("supervised", "synthetic", "adapter"):
        add_kb_arguments(sub.add_parser(name), name)
    finetune_squad.add_arguments(sub.add_parser("squad"))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.command == "supervised":
        result = cmd_supervised(args)
    elif args.command == "synthetic":
        result = cmd_synthetic(args)
    elif args.command == "squad":
        result = finetune_squad.cmd_squad(args)
    else:
        result = cmd_adapter(args)
    result["total_seconds"] = round(time.perf_counter() - began, 1)
    result["load"] = load()
    result["cpus"] = os.cpu_count()
    output = Path(args.output or RESULTS / f"finetune-{args.command}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, default=str)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
