"""Index the sample documents and answer a few questions, offline.

Run with ``make demo`` (or ``python examples/demo.py [--llm] [KB_FOLDER]``). Uses the
embedded defaults: the bundled all-MiniLM-L6-v2, a Chroma store in the kb folder, hybrid
retrieval and extractive answers, so no API key and no network are needed. With
``--llm`` (``make demo-llm``) a local llama.cpp model writes the answers (the bundled
SmolLM2-135M GGUF, a very small model: expect short, sometimes clumsy answers), streamed
as they are generated; every claim is still checked against the passages. ``--lora DIR``
(``make demo-llm LORA=DIR``) applies a LoRA adapter of ``ragkit finetune generator``;
``--model GGUF`` (``make demo-llm MODEL=DIR/merged.gguf``) answers with another GGUF,
such as that adapter merged by ``ragkit finetune merge DIR``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from ragkit import RAG, Answer

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "What is the default timeout?",
    "Which port does the staging environment use?",
    "Are POST requests retried?",
    "What is the capital of Australia?",  # not in the documents: expect a refusal
]


def main(kb: Path, llm: bool = False, lora: str | None = None, model: str | None = None) -> None:
    generator: Any = None
    if llm:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(model, max_tokens=96, lora=lora)
    with RAG(kb, generator=generator) as rag:
        report = rag.add(HERE / "sample_docs")
        print(f"Indexed {HERE / 'sample_docs'} into {kb}:")
        print(report)
        print()
        for question in QUESTIONS:
            print(f"Q: {question}")
            if not llm:
                print(rag.ask(question))
            else:
                for item in rag.stream(question):  # verified text, a sentence at a time
                    if isinstance(item, Answer):
                        print("\n" + item.format_sources().strip())
                    else:
                        sys.stdout.write(item)
                        sys.stdout.flush()
            print("-" * 72)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kb", nargs="?", help="knowledge-base folder (default: a temporary one)")
    parser.add_argument("--llm", action="store_true", help="answer with the local SmolLM2")
    parser.add_argument("--lora", help="with --llm: a LoRA adapter (ragkit finetune generator)")
    parser.add_argument("--model", help="with --llm: a GGUF model (default: bundled SmolLM2)")
    args = parser.parse_args()
    if args.kb:
        main(Path(args.kb), llm=args.llm, lora=args.lora, model=args.model)
    else:
        with tempfile.TemporaryDirectory(prefix="ragkit-demo-") as tmp:
            main(Path(tmp) / "kb", llm=args.llm, lora=args.lora, model=args.model)
