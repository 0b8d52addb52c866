"""SQuAD answers replayed: retrieve once, then score generator settings on the same hits.

``ragkit eval squad`` retrieves every question each time it runs. To compare
``ExtractiveGenerator`` settings on the same retrieval, ``cache`` stores each question's
``rag.retrieve(q, k)`` (the answer's chunks) and ``rag.retrieve(q, 3k)`` (to rank
paragraphs), and ``run`` answers from them through ``RetrievalQA`` with the citation
verifier and scores with ``evaluate_answers``, as the CLI does. Sentence vectors are
memoized across settings (and saved beside the cache). Words per answer: mean over
answered questions, ``[n]`` markers removed.

    python bench/squad_replay.py cache --kb /tmp/h16/kb --out /tmp/h16/hits.pkl
    python bench/squad_replay.py run --hits /tmp/h16/hits.pkl --articles 12-23 \\
        '{"best_first": false, "typed_extras": false, "min_new_terms": 0, "follow_on": false}' '{}'

The pickles are this script's own files (written and read by it only).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit import RAG
from ragkit._build import sentence_embedder
from ragkit.chain import RetrievalQA
from ragkit.embeddings import SentenceTransformerEmbedder
from ragkit.embeddings._wrapper import WrappedEmbedder
from ragkit.eval import SquadDataset, evaluate_answers
from ragkit.generation import ExtractiveGenerator
from ragkit.protocols import Embedder, Filters
from ragkit.types import ScoredChunk
from ragkit.verification import CitationVerifier

DATA = Path(__file__).resolve().parents[2] / "shared/bench/squad/dev-v1.1-articles-00-23.json"
_MARKER = re.compile(r"\s*\[\d+\]")
Hits = dict[str, tuple[list[ScoredChunk], list[ScoredChunk]]]


class CachedRetriever:
    """Answers ``retrieve`` from the stored hits (k chunks, or 3k to rank paragraphs)."""

    def __init__(self, hits: Hits, k: int) -> None:
        self.hits = hits
        self.k = k

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        few, many = self.hits[query]
        return list(few if k <= self.k else many)[:k]


class MemoEmbedder(WrappedEmbedder):
    """An embedder's vectors kept by text (they are deterministic)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.docs: dict[str, NDArray[np.float32]] = {}
        self.queries: dict[str, NDArray[np.float32]] = {}

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.docs]
        if todo:
            self.docs.update(zip(todo, self.inner.embed_documents(todo), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.docs[t] for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        if text not in self.queries:
            self.queries[text] = self.inner.embed_query(text)
        return self.queries[text]


def _articles(spec: str) -> set[int]:
    numbers: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


def cache(args: argparse.Namespace) -> None:
    _documents, questions = SquadDataset(args.data).read()
    hits: Hits = {}
    with RAG(args.kb) as rag:
        for q in questions:
            hits[q.question] = (
                rag.retrieve(q.question, args.k),
                rag.retrieve(q.question, 3 * args.k),
            )
    with open(args.out, "wb") as file:
        pickle.dump(hits, file)
    print(f"{len(hits)} questions -> {args.out}")


def run(args: argparse.Namespace) -> None:
    _documents, questions = SquadDataset(args.data).read()
    titles = list(dict.fromkeys(q.title for q in questions))
    chosen = [q for q in questions if titles.index(q.title) in _articles(args.articles)]
    with open(args.hits, "rb") as file:
        hits: Hits = pickle.load(file)  # this script's own cache file
    embedder = MemoEmbedder(sentence_embedder(SentenceTransformerEmbedder()))
    memo = Path(f"{args.hits}.vectors")
    if memo.exists():
        with memo.open("rb") as file:
            embedder.docs, embedder.queries = pickle.load(file)  # written by this script
    for spec in args.settings:
        options: dict[str, Any] = json.loads(spec)
        qa = RetrievalQA(
            CachedRetriever(hits, args.k),
            ExtractiveGenerator(embedder, **options),
            verifier=CitationVerifier(embedder),
            k=args.k,
        )
        began = time.time()
        report = evaluate_answers(qa, chosen, k=args.k)
        words = [
            len(_MARKER.sub("", r.answer).split()) for r in report.per_question if not r.refused
        ]
        row = {
            "settings": options,
            "articles": args.articles,
            "questions": report.questions,
            "gold@k": round(report.gold_top_k, 4),
            "citation precision": round(report.citation_precision, 4),
            "citations": report.citations,
            "contains gold": round(report.answer_contains_gold, 4),
            "words per answer": round(statistics.mean(words), 1) if words else 0.0,
            "F1": round(report.f1, 4),
            "refused": round(report.refusal_rate, 4),
            "seconds": round(time.time() - began),
        }
        print(json.dumps(row), flush=True)
        with open(f"{memo}.tmp", "wb") as file:
            pickle.dump((embedder.docs, embedder.queries), file)
        os.replace(f"{memo}.tmp", memo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--k", type=int, default=5)
    commands = parser.add_subparsers(dest="command", required=True)
    store = commands.add_parser("cache", help="retrieve every question once")
    store.add_argument("--kb", required=True)
    store.add_argument("--out", required=True)
    replay = commands.add_parser("run", help="answer and score ExtractiveGenerator settings")
    replay.add_argument("--hits", required=True)
    replay.add_argument("--articles", default="0-23", help="e.g. 0-11, 12-23")
    replay.add_argument("settings", nargs="+", help="ExtractiveGenerator keyword arguments as JSON")
    args = parser.parse_args(argv)
    (cache if args.command == "cache" else run)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
