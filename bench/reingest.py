"""Re-adding an unchanged folder: how long it takes next to the first ingest.

Writes 1,000 small text files (two to six paragraphs each), indexes them into a fresh
knowledge base, then adds the same folder again in a new ``RAG`` object (a new
process would behave the same: the record is on disk). Reports both times, their
ratio, and how many texts the embedder computed on the second run (the goal: none).

    python bench/reingest.py                       # FakeEmbedder (no model)
    python bench/reingest.py --embedder minilm     # the bundled all-MiniLM-L6-v2
    python bench/reingest.py --store chroma --files 1000 --json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit import RAG
from ragkit.embeddings._wrapper import WrappedEmbedder
from ragkit.protocols import Embedder
from ragkit.testing import FakeEmbedder

WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "this",
    "be",
    "are",
    "was",
    "an",
    "or",
    "timeout",
    "pool",
    "connection",
    "retry",
    "cache",
    "index",
    "chunk",
    "vector",
    "query",
    "answer",
    "source",
    "file",
    "server",
    "client",
    "request",
    "response",
    "token",
    "model",
    "embed",
    "store",
    "record",
    "lock",
    "sync",
    "update",
]


class Counting(WrappedEmbedder):
    """Counts the texts an embedder is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts += len(texts)
        return self.inner.embed_documents(texts)


def write_corpus(folder: Path, files: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        paragraphs = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 90))).capitalize() + "."
            for _ in range(rng.randint(2, 6))
        ]
        path = folder / f"section{i % 20:02d}" / f"note{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        total += path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return total


def make_embedder(name: str) -> Embedder:
    if name == "fake":
        return FakeEmbedder(dimension=384)
    from ragkit.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    return embedder


def run(args: argparse.Namespace) -> dict[str, Any]:
    inner = make_embedder(args.embedder)
    with tempfile.TemporaryDirectory() as tmp:
        folder, kb = Path(tmp) / "docs", Path(tmp) / "kb"
        size = write_corpus(folder, args.files)

        first_counter = Counting(inner)
        with RAG(kb, store=args.store, embedder=first_counter, verify=False) as rag:
            began = time.perf_counter()
            first = rag.add(folder)
            first_seconds = time.perf_counter() - began
            chunks = rag.store.count()

        again_counter = Counting(inner)
        with RAG(kb, store=args.store, embedder=again_counter, verify=False) as rag:
            began = time.perf_counter()
            again = rag.add(folder)
            again_seconds = time.perf_counter() - began
    assert len(again.unchanged) == args.files, again
    return {
        "files": args.files,
        "bytes": size,
        "chunks": chunks,
        "embedder": inner.model_id,
        "store": args.store,
        "first_ingest_s": round(first_seconds, 3),
        "first_texts_embedded": first_counter.texts,
        "first_added": len(first.added),
        "readd_s": round(again_seconds, 3),
        "readd_texts_embedded": again_counter.texts,
        "readd_unchanged": len(again.unchanged),
        "ratio_percent": round(100 * again_seconds / first_seconds, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--embedder", choices=("fake", "minilm"), default="fake")
    parser.add_argument("--store", choices=("chroma", "faiss", "memory"), default="faiss")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
