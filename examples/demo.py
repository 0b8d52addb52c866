"""Index the sample documents and answer a few questions, offline.

Run with ``make demo`` (or ``python examples/demo.py [KB_FOLDER]``). Uses the embedded
defaults: the bundled all-MiniLM-L6-v2, a Chroma store in the kb folder, and extractive
answers, so no API key and no network are needed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ragkit import RAG

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "What is the default timeout?",
    "Which port does the staging environment use?",
    "Are POST requests retried?",
    "What is the capital of Australia?",  # not in the documents: expect a refusal
]


def main(kb: Path) -> None:
    with RAG(kb) as rag:
        report = rag.add(HERE / "sample_docs")
        print(f"Indexed {HERE / 'sample_docs'} into {kb}:")
        print(report)
        print()
        for question in QUESTIONS:
            print(f"Q: {question}")
            print(rag.ask(question))
            print("-" * 72)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="ragkit-demo-") as tmp:
            main(Path(tmp) / "kb")
