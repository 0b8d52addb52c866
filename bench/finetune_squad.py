"""The SQuAD reranker benchmark of issue 15: ``python bench/finetune.py squad``.

A cross-encoder trained on the questions of SQuAD articles 00-11 (their gold
paragraph's best chunk as the positive, hard negatives mined from the kb), judged on a
held-out tenth of them against the kb's own first stage, then scored on articles 12-23
with the extractive default. Figures go to docs/benchmarks/finetune.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _positives import best_chunk_pairs
from _progress import load, progress_printer

from ragkit import RAG
from ragkit.cli._options import add_precision
from ragkit.training import TrainConfig
from ragkit.training.pairs import Pair


def by_article(questions: list[Any], articles: range) -> list[Any]:
    """The questions of these articles, numbered from 0 in file order."""
    titles = list(dict.fromkeys(q.title for q in questions))
    keep = {titles[i] for i in articles if i < len(titles)}
    return [q for q in questions if q.title in keep]


def squad_pairs(rag: RAG, questions: list[Any], args: argparse.Namespace) -> list[Pair]:
    """Up to ``--max-pairs`` questions of articles 00-11 (shuffled by ``--seed``), each
    with the chunk of its gold paragraph the kb's embedder ranks highest."""
    train_q = by_article(questions, range(12))
    random.Random(args.seed).shuffle(train_q)
    train_q = train_q[: args.max_pairs]
    return best_chunk_pairs(rag, [(q.question, q.document_id) for q in train_q])


def judge_reranker(rag: RAG, pairs: list[Pair], folder: str, seed: int) -> dict[str, Any]:
    """A trained reranker judged as a training run with these pairs and ``seed`` would
    judge it (no training): held-out nDCG@10 against the dense and the hybrid first
    stage, alone and at its best mix weight, and the promotion decision against the
    kb's own (hybrid) order."""
    from ragkit.training.evaluate import pool_ranker
    from ragkit.training.negatives import NegativeRules
    from ragkit.training.pipeline import prepare
    from ragkit.training.promote import CONFIDENCE, gain_lower_bound
    from ragkit.training.train import load_cross_encoder

    _train, _held, task, _corpus = prepare(
        pairs, kb=rag, base_embedder=rag.embedder, rules=NegativeRules(), eval_pairs=None,
        heldout_fraction=0.1, pool=1000, seed=seed, mine=True, progress=progress_printer(),
    )  # fmt: skip
    model = load_cross_encoder(folder)
    result: dict[str, Any] = {"heldout_queries": len(task.queries)}
    for stage in ("dense", "hybrid"):
        samples = task.reranker_samples(pool_ranker(rag.embedder, stage, 20), 20)
        predictions = task.reranker_predictions(samples, model)
        first = task.reranker_per_query(samples)
        alone = task.reranker_per_query(samples, predictions)
        weight, mixed = task.best_weight(samples, predictions)
        gain = float(np.mean(mixed) - np.mean(first))
        lower = gain_lower_bound(first, mixed, CONFIDENCE)
        result[stage] = {
            "first_stage": float(np.mean(first)),
            "reranker": float(np.mean(alone)),
            "weight": weight,
            "mixed": float(np.mean(mixed)),
            "gain_lower": lower,
            "promoted": gain > 0 and lower > 0,
        }
        print(f"  judged against {stage}: {result[stage]}", file=sys.stderr, flush=True)
    return result


def score_answers(kb: Path, questions: list[Any], args: argparse.Namespace, **rerank: Any) -> Any:
    """The extractive default on a sample of articles 12-23's questions (k = ``--k``)."""
    from ragkit.eval import evaluate_answers

    held = by_article(questions, range(12, 24))
    began = time.perf_counter()
    with RAG(kb, fetch_k=args.k, **rerank) as rag:
        answers = evaluate_answers(rag, held, k=args.k, sample=args.sample, seed=0)
    metrics = {**answers.metrics(), "seconds": round(time.perf_counter() - began, 1)}
    print(f"  {rerank or 'base'}: {metrics} (load {load()})", file=sys.stderr, flush=True)
    return metrics


def cmd_squad(args: argparse.Namespace) -> dict[str, Any]:
    """A cross-encoder trained on the questions of articles 00-11 (gold paragraph as the
    positive, hard negatives from the kb), scored on a sample of articles 12-23 with
    the extractive default (k=5; the reranker orders the 5 retrieved chunks). With
    ``--judge DIR`` nothing is trained: the reranker in DIR is judged on the held-out
    split (:func:`judge_reranker`), and both it (at the weight the hybrid judgement
    chose) and the base are scored on test."""
    from ragkit.eval import SquadDataset
    from ragkit.reranking import CrossEncoderReranker
    from ragkit.training.pipeline import finetune_reranker

    data = SquadDataset(args.squad)
    questions = data.questions()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    kb = work / "kb"
    began = time.perf_counter()
    result: dict[str, Any] = {}
    with RAG(kb) as rag:
        rag.add(data.documents())
        pairs = squad_pairs(rag, questions, args)
        result.update(pairs=len(pairs), index_seconds=round(time.perf_counter() - began, 1))
        began = time.perf_counter()
        if args.judge:
            result.update(judge=args.judge, **judge_reranker(rag, pairs, args.judge, args.seed))
        else:
            report = finetune_reranker(
                work / "reranker", pairs=pairs, kb=rag,
                config=TrainConfig(
                    epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                    negatives=args.negatives, seed=args.seed, precision=args.precision,
                ),
                progress=progress_printer(),
            )  # fmt: skip
            print(report, file=sys.stderr, flush=True)
            result["report"] = report.to_dict()
        result.update(finetune_seconds=round(time.perf_counter() - began, 1), load=load())
    result["base"] = score_answers(kb, questions, args)
    if args.judge:
        weight = result["hybrid"]["weight"]
        reranker = CrossEncoderReranker(args.judge, weight=weight)
        result[f"reranker-weight-{weight}"] = score_answers(kb, questions, args, reranker=reranker)
    elif report.promoted:
        reranker = CrossEncoderReranker(work / "reranker")
        result["reranker"] = score_answers(kb, questions, args, reranker=reranker)
    return result


def add_arguments(squad: argparse.ArgumentParser) -> None:
    """The options of ``finetune.py squad``."""
    squad.add_argument("--squad", required=True)
    squad.add_argument("--work", required=True)
    squad.add_argument("--epochs", type=int, default=1)
    squad.add_argument("--batch-size", type=int, default=32)
    squad.add_argument("--lr", type=float, default=5e-5)
    squad.add_argument("--negatives", type=int, default=3)
    squad.add_argument("--max-pairs", type=int, default=600)
    squad.add_argument("--sample", type=int, default=300)
    squad.add_argument("--k", type=int, default=5)
    squad.add_argument("--seed", type=int, default=0)
    squad.add_argument(
        "--judge", help="score this trained reranker folder on the held-out split only"
    )
    add_precision(squad)
    squad.add_argument("--output")
