"""Calibrate the grounded-refusal thresholds of ``CitationVerifier`` on SQuAD.

Answerable questions: SQuAD questions asked against the whole index. Unanswerable
questions: the same questions asked against the index without their article (retrieval
filtered with ``{"title": {"$ne": title}}``), so that nothing retrieved can answer them
while the topic words stay the same. A seeded shuffle splits the questions into a
calibration half and a held-out half.

1. ``min_relevance`` (the chain refuses before generating when no retrieved sentence
   has this cosine similarity to the question): the highest value that refuses at most
   ``--max-false-refusal`` of the answerable calibration questions; both rates are then
   reported on the held-out half.
2. The verifier's support floor (``threshold`` decayed down to ``min_threshold``): an
   answer is refused when none of its claims reaches the floor. With ``--llm N`` the
   local LLM answers N questions of each half in both conditions (only those that pass
   the relevance gate), and the best claim support of each answer is recorded; the floor
   is chosen the same way. Extractive answers quote the passages, so their support is
   ~1 and this floor never refuses them.

Usage (reuses the kb of ``ragkit eval squad ... --kb /tmp/squad/kb``)::

    PYTHONPATH=src python bench/calibrate_refusal.py ../shared/bench/squad \\
        --kb /tmp/squad/kb --sample 1000 --llm 60 --output /tmp/squad/calibration.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from ragkit import RAG
from ragkit.analysis import content_terms
from ragkit.citations import answer_from_generation
from ragkit.eval import SquadDataset, SquadQuestion
from ragkit.eval.squad import sample_questions
from ragkit.verification import CitationVerifier, split_claims


def _rates(values: list[float], threshold: float) -> float:
    """Share of ``values`` below ``threshold`` (those would be refused)."""
    return sum(v < threshold for v in values) / len(values) if values else 0.0


def choose(answerable: list[float], max_false: float) -> float:
    """The highest threshold refusing at most ``max_false`` of the answerable scores."""
    ordered = sorted(answerable)
    allowed = int(max_false * len(ordered))  # scores strictly below the threshold
    # Refusing the ``allowed`` lowest scores: put the threshold at the next score.
    return round(ordered[allowed] - 1e-6, 4) if allowed < len(ordered) else ordered[-1]


def _filters(q: SquadQuestion) -> dict[str, Any]:
    return {"title": {"$ne": q.title}}


def relevance_scores(
    rag: RAG, verifier: CitationVerifier, questions: list[SquadQuestion], k: int
) -> list[dict[str, Any]]:
    rows = []
    for i, q in enumerate(questions, 1):
        inside = rag.retrieve(q.question, k)
        outside = rag.retrieve(q.question, k, filters=_filters(q))
        rows.append(
            {
                "id": q.id,
                "answerable": verifier.relevance(q.question, inside),
                "unanswerable": verifier.relevance(q.question, outside),
            }
        )
        if i % 100 == 0:
            print(f"  relevance: {i}/{len(questions)}", file=sys.stderr, flush=True)
    return rows


def best_support(verifier: CitationVerifier, generation: Any, question: str) -> float | None:
    """The best support score of any claim of the answer; None for a refusal."""
    answer = answer_from_generation(question, generation)
    if answer.refused or not answer.contexts:
        return None
    claims = [c for c in split_claims(answer.text) if content_terms(c.text)]
    if not claims:
        return None
    supports = verifier._supports(claims, answer.contexts)
    return max((s[0].score for s in supports if s), default=0.0)


def support_scores(
    rag: RAG,
    verifier: CitationVerifier,
    generator: Any,
    questions: list[SquadQuestion],
    *,
    k: int,
    min_relevance: float,
) -> list[dict[str, Any]]:
    rows = []
    for i, q in enumerate(questions, 1):
        row: dict[str, Any] = {"id": q.id}
        for condition, filters in (("answerable", None), ("unanswerable", _filters(q))):
            hits = rag.retrieve(q.question, k, filters=filters)
            if verifier.relevance(q.question, hits) < min_relevance:
                row[condition] = "gated"
                continue
            generation = generator.generate(q.question, hits)
            row[condition] = best_support(verifier, generation, q.question)
        rows.append(row)
        print(f"  llm: {i}/{len(questions)} {row}", file=sys.stderr, flush=True)
    return rows


def floor_of(threshold: float, decay: float, min_threshold: float) -> float:
    """The last threshold the verifier tries: ``threshold * decay**n >= min_threshold``."""
    floor = threshold
    while floor * decay >= min_threshold:
        floor *= decay
    return floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="SQuAD JSON file or folder")
    parser.add_argument("--kb", required=True, help="kb folder holding the SQuAD paragraphs")
    parser.add_argument("--sample", type=int, default=1000, help="questions in all (1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-false-refusal", type=float, default=0.05)
    parser.add_argument("--llm", type=int, default=0, help="LLM answers per half (0: none)")
    parser.add_argument("--output", default="calibration.json")
    args = parser.parse_args()

    data = SquadDataset(args.path)
    documents, questions = data.read()
    questions = [q for q in questions if not q.is_impossible]
    chosen = sample_questions(questions, args.sample, args.seed)
    random.Random(args.seed).shuffle(chosen)
    half = len(chosen) // 2
    calibration, held_out = chosen[:half], chosen[half:]

    began = time.perf_counter()
    with RAG(args.kb) as rag:
        if rag.store.count() == 0:
            # Build the kb first with `ragkit eval squad PATH --kb DIR` (it indexes).
            rag.add(documents)
        verifier = rag.qa.verifier or CitationVerifier(rag.embedder)
        cal = relevance_scores(rag, verifier, calibration, args.k)
        held = relevance_scores(rag, verifier, held_out, args.k)
        min_relevance = choose([r["answerable"] for r in cal], args.max_false_refusal)
        result: dict[str, Any] = {
            "sample": args.sample,
            "seed": args.seed,
            "k": args.k,
            "max_false_refusal": args.max_false_refusal,
            "min_relevance": min_relevance,
            "relevance": {
                name: {
                    "questions": len(rows),
                    "false_refusal": _rates([r["answerable"] for r in rows], min_relevance),
                    "unanswerable_refused": _rates(
                        [r["unanswerable"] for r in rows], min_relevance
                    ),
                    "old_default_0.3": {
                        "false_refusal": _rates([r["answerable"] for r in rows], 0.3),
                        "unanswerable_refused": _rates([r["unanswerable"] for r in rows], 0.3),
                    },
                }
                for name, rows in (("calibration", cal), ("held_out", held))
            },
            "per_question": {"calibration": cal, "held_out": held},
        }
        print(json.dumps(result["relevance"], indent=2), flush=True)

        if args.llm:
            from ragkit.generation.llamacpp import LlamaCppGenerator

            with LlamaCppGenerator() as generator:
                llm_cal = support_scores(
                    rag,
                    verifier,
                    generator,
                    calibration[: args.llm],
                    k=args.k,
                    min_relevance=min_relevance,
                )
                llm_held = support_scores(
                    rag,
                    verifier,
                    generator,
                    held_out[: args.llm],
                    k=args.k,
                    min_relevance=min_relevance,
                )
            scored = [r["answerable"] for r in llm_cal if isinstance(r["answerable"], float)]
            floor = choose(scored, args.max_false_refusal) if scored else None
            current = floor_of(verifier.threshold, verifier.decay, verifier.min_threshold)

            def rates(rows: list[dict[str, Any]], at: float) -> dict[str, Any]:
                out: dict[str, Any] = {"questions": len(rows)}
                for condition in ("answerable", "unanswerable"):
                    values = [r[condition] for r in rows]
                    refused = sum(
                        v == "gated" or v is None or (isinstance(v, float) and v < at)
                        for v in values
                    )
                    out[f"{condition}_refused"] = refused / len(values) if values else 0.0
                    out[f"{condition}_gated"] = sum(v == "gated" for v in values)
                    out[f"{condition}_llm_refused"] = sum(v is None for v in values)
                return out

            result["support"] = {
                "current_floor": current,
                "chosen_floor": floor,
                "calibration": {
                    "at_current": rates(llm_cal, current),
                    "at_chosen": rates(llm_cal, floor) if floor is not None else None,
                },
                "held_out": {
                    "at_current": rates(llm_held, current),
                    "at_chosen": rates(llm_held, floor) if floor is not None else None,
                },
                "per_question": {"calibration": llm_cal, "held_out": llm_held},
            }
            print(
                json.dumps(
                    {k: v for k, v in result["support"].items() if k != "per_question"}, indent=2
                ),
                flush=True,
            )
    result["seconds"] = time.perf_counter() - began
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
