"""Generator fine-tuning benchmark (issue 17): LoRA on SmolLM2-135M-Instruct, trained on
SQuAD articles 00-11, scored on 12-23. Figures go to docs/benchmarks/finetune_generator.md.

Steps (each runnable alone; ``--work`` holds their outputs):

    SQUAD=../shared/bench/squad/dev-v1.1-articles-00-23.json
    # the kb of all 1,048 paragraphs (built once by the eval command)
    ragkit eval squad $SQUAD --kb /tmp/gen17/kb --sample 1
    # 1. examples: train questions (articles 0-11), distractors retrieved from the
    #    train articles only, prompts rendered by LlamaCppGenerator's builder
    python bench/finetune_generator.py examples --squad $SQUAD --kb /tmp/gen17/kb \\
        --work /tmp/gen17/run --max-questions 240
    # 2. train: LoRA SFT (peft + trl), adapter + adapter.gguf + report in WORK/adapter
    python bench/finetune_generator.py train --work /tmp/gen17/run
    # 3. eval: base and adapted on the same held-out questions (articles 12-23),
    #    k = 1 and 4, and with the answering paragraph removed (two processes can run
    #    these side by side)
    python bench/finetune_generator.py eval --squad $SQUAD --kb /tmp/gen17/kb \\
        --work /tmp/gen17/run --label base --sample 60
    python bench/finetune_generator.py eval --squad $SQUAD --kb /tmp/gen17/kb \\
        --work /tmp/gen17/run --label lora --sample 60
    # 4. report: the side-by-side table (Markdown)
    python bench/finetune_generator.py report --work /tmp/gen17/run
    # decode speed of both models at equal load (one process, interleaved); with
    # --merged (repeatable), also GGUFs such as the adapter merged by ragkit finetune merge
    python bench/finetune_generator.py decode --squad $SQUAD --kb /tmp/gen17/kb \\
        --work /tmp/gen17/run --questions 30 [--merged WORK/adapter/merged.gguf]
    # merge fidelity: each weight type's merged GGUF against the adapter applied at load
    python bench/finetune_generator.py merge --squad $SQUAD --kb /tmp/gen17/kb \\
        --work /tmp/gen17/run --split train --questions 30

``ragkit eval squad $SQUAD --kb KB --llm --lora WORK/adapter --ks 1,4 --removed
--articles 12-23 --sample 60`` runs step 3 for both models in one process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ragkit import RAG
from ragkit.cli._options import add_precision
from ragkit.eval import SquadDataset, evaluate_answers
from ragkit.eval.squad_removed import evaluate_removed
from ragkit.generation import LlamaCppGenerator
from ragkit.training.generator.examples import read_examples, squad_examples, write_examples
from ragkit.training.generator.gguf_merge import merge_gguf
from ragkit.training.generator.lora import LoraSettings
from ragkit.training.generator.pipeline import finetune_generator

TRAIN = range(12)
TEST = range(12, 24)


def _load() -> float:
    return os.getloadavg()[0]


def _titles(path: str, articles: range) -> list[str]:
    documents, _questions = SquadDataset(path).read()
    titles = list(dict.fromkeys(str(d.metadata.get("title")) for d in documents))
    return [titles[i] for i in articles]


def examples(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train_titles = _titles(args.squad, TRAIN)
    gen = LlamaCppGenerator(n_threads=1)  # the builder of the generator that will serve
    began = time.perf_counter()
    with RAG(args.kb) as rag:

        def retrieve(query: str, k: int | None = None, filters: Any = None) -> Any:
            # distractors from the training articles only: no held-out passage is trained on
            return rag.retrieve(query, k, {"title": {"$in": train_titles}})

        made = squad_examples(
            args.squad,
            gen.builder,
            retrieve=retrieve,
            chunker=rag.chunker,
            articles=TRAIN,
            ks=(1, 4),
            refusal=args.refusal,
            max_questions=args.max_questions,
            seed=args.seed,
        )
    gen.close()
    n = write_examples(made, work / "examples.jsonl")
    print(
        f"{n} examples ({sum(e.refusal for e in made)} refusals) in "
        f"{time.perf_counter() - began:.0f} s -> {work / 'examples.jsonl'}"
    )


def train(args: argparse.Namespace) -> None:
    work = Path(args.work)
    made = read_examples(work / "examples.jsonl")
    settings = LoraSettings(
        r=args.rank,
        alpha=2 * args.rank,
        epochs=args.epochs,
        learning_rate=args.lr,
        accumulation=args.accumulation,
        max_steps=args.steps,
        max_minutes=args.max_minutes,
        layers=args.layers,
        seed=args.seed,
        precision=args.precision,
        checkpointing=not args.no_checkpointing,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = finetune_generator(work / "adapter", examples=made, settings=settings, seed=args.seed)
    print(report)


def evaluate(args: argparse.Namespace) -> None:
    work = Path(args.work)
    dataset = SquadDataset(args.squad)
    _documents, questions = dataset.read()
    test_titles = set(_titles(args.squad, TEST))
    questions = [q for q in questions if q.title in test_titles]
    lora = work / "adapter" if args.label == "lora" else None
    model = args.merged if args.label == "merged" else None
    gen = LlamaCppGenerator(model, n_threads=args.threads, lora=lora)
    runs: list[dict[str, Any]] = []
    with RAG(args.kb, generator=gen) as rag:
        for k in args.ks:
            began, load = time.perf_counter(), _load()
            report = evaluate_answers(rag, questions, k=k, sample=args.sample, seed=args.seed)
            removed = evaluate_removed(rag, questions, k=k, sample=args.sample, seed=args.seed)
            runs.append(
                {
                    "k": k,
                    "metrics": report.metrics(),
                    "latency_mean_ms": report.latency_mean_ms,
                    "answers": report.to_dict(),
                    "removed": removed.to_dict(),
                    "seconds": time.perf_counter() - began,
                    "load_average": [load, _load()],
                }
            )
            print(args.label, k, report, f"removed: {removed.refusal_rate:.3f}", flush=True)
    suffix = "" if list(args.ks) == [1, 4] else "-k" + "-".join(map(str, args.ks))
    out = work / f"eval-{args.label}{suffix}.json"
    # written before the decode timing too, so a run stopped there keeps its answers
    out.write_text(json.dumps({"label": args.label, "runs": runs, "decode": None}, indent=1))
    speed = decode_speed(gen, rag_path=args.kb, questions=[q.question for q in questions[:10]])
    gen.close()
    out.write_text(json.dumps({"label": args.label, "runs": runs, "decode": speed}, indent=1))
    print(f"-> {out}")


def decode_speed(gen: LlamaCppGenerator, *, rag_path: str, questions: list[str]) -> dict[str, Any]:
    """llama.cpp's own prefill and decode timings over a few answers (k = 4)."""
    predicted_n = predicted_ms = prompt_n = prompt_ms = 0.0
    with RAG(rag_path) as rag:
        for question in questions:
            hits = rag.retrieve(question, 4)
            gen.guard.window = 0  # complete(): llama.cpp reports timings only unstopped
            gen.generate(question, hits)
            timings = gen.last_timings or {}
            predicted_n += timings.get("predicted_n", 0.0)
            predicted_ms += timings.get("predicted_ms", 0.0)
            prompt_n += timings.get("prompt_n", 0.0)
            prompt_ms += timings.get("prompt_ms", 0.0)
    return {
        "questions": len(questions),
        "decode_tokens_per_s": 1000 * predicted_n / predicted_ms if predicted_ms else None,
        "prefill_tokens_per_s": 1000 * prompt_n / prompt_ms if prompt_ms else None,
        "load_average": _load(),
    }


def decode(args: argparse.Namespace) -> None:
    """Decode speed of the base and the adapted model (and, with ``--merged``, the merged
    GGUF) at equal load: the generators in one process, answering the first
    ``--questions`` held-out questions at k = 4 in turn, the order rotated by one each
    question (with two: base first on even questions, adapter first on odd), repeat
    guard off, llama.cpp's own timings summed; writes WORK/decode.json."""
    dataset = SquadDataset(args.squad)
    _documents, questions = dataset.read()
    titles = set(_titles(args.squad, TEST))
    asked = [q.question for q in questions if q.title in titles][: args.questions]
    gens = {
        "base": LlamaCppGenerator(n_threads=args.threads),
        "lora": LlamaCppGenerator(n_threads=args.threads, lora=str(Path(args.work) / "adapter")),
    }
    for merged in args.merged or []:  # label: merged:<file stem>
        gens[f"merged:{Path(merged).stem}"] = LlamaCppGenerator(merged, n_threads=args.threads)
    labels = list(gens)
    sums = {label: dict.fromkeys(("predicted_n", "predicted_ms", "prompt_n", "prompt_ms"), 0.0)
            for label in gens}  # fmt: skip
    loads = []
    with RAG(args.kb) as rag:
        for i, question in enumerate(asked):
            hits = rag.retrieve(question, 4)
            for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
                gens[label].guard.window = 0  # llama.cpp reports timings only unstopped
                gens[label].generate(question, hits)
                for key, value in (gens[label].last_timings or {}).items():
                    if key in sums[label]:
                        sums[label][key] += value
            loads.append(_load())
    out: dict[str, Any] = {
        label: {
            "questions": len(asked),
            "decode_tokens": t["predicted_n"],
            "prompt_tokens": t["prompt_n"],
            "decode_tokens_per_s": 1000 * t["predicted_n"] / t["predicted_ms"],
            "prefill_tokens_per_s": 1000 * t["prompt_n"] / t["prompt_ms"],
            "llama_seconds_per_answer": (t["prompt_ms"] + t["predicted_ms"]) / 1000 / len(asked),
        }
        for label, t in sums.items()
    }
    base_speed = out["base"]["decode_tokens_per_s"]
    out["decode_change"] = out["lora"]["decode_tokens_per_s"] / base_speed - 1
    out["changes"] = {  # decode and prefill speed of each model against the base's
        label: {
            "decode": out[label]["decode_tokens_per_s"] / base_speed - 1,
            "prefill": out[label]["prefill_tokens_per_s"] / out["base"]["prefill_tokens_per_s"] - 1,
        }
        for label in labels[1:]
    }
    out["load_average"] = [min(loads), max(loads)]
    out["method"] = (
        f"one process, order rotated per question, k=4, n_threads={args.threads}, guard off"
    )
    for gen in gens.values():
        gen.close()
    target = Path(args.work) / (args.output or "decode.json")
    target.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1), f"-> {target}", sep="\n")


def _kept(base: Path, merged: Path, adapter: Path) -> float:
    """How much of the adapter's delta the merged weights hold, over every adapted
    weight: <deq(merged) - deq(base), delta> / <delta, delta> (1: all of it; rounding
    noise that does not follow the delta averages out)."""
    import gguf
    import numpy as np

    from ragkit.training.generator.gguf_adapter import base_shape, lora_deltas

    deltas = {p.weight: p.delta() for p in lora_deltas(adapter, base_shape(base))}
    old = {t.name: t for t in gguf.GGUFReader(str(base)).tensors if t.name in deltas}
    along = norm = 0.0
    for t in gguf.GGUFReader(str(merged)).tensors:
        if t.name in deltas:
            was = gguf.dequantize(old[t.name].data, old[t.name].tensor_type)
            now = gguf.dequantize(t.data, t.tensor_type)
            along += float(np.sum((now - was) * deltas[t.name]))
            norm += float(np.sum(deltas[t.name] ** 2))
    return along / norm


def merge(args: argparse.Namespace) -> None:
    """Merge WORK/adapter into the base GGUF once per ``--types`` weight type, then
    compare each merged model's answers with the adapter applied at load (llama.cpp's
    LoRA path, the reference) on the first ``--questions`` questions of the ``--split``
    articles at k = 4: the share answered with the identical text. Also how much of the
    adapter's delta the merged weights hold. Writes WORK/merge-SPLIT.json."""
    work = Path(args.work)
    adapter = work / "adapter"
    base = Path(json.loads((adapter / "finetune-report.json").read_text())["base"])
    dataset = SquadDataset(args.squad)
    _documents, questions = dataset.read()
    titles = set(_titles(args.squad, TRAIN if args.split == "train" else TEST))
    asked = [q.question for q in questions if q.title in titles][: args.questions]
    with RAG(args.kb) as rag:
        hits = [rag.retrieve(question, 4) for question in asked]

    def answers(gen: LlamaCppGenerator) -> list[str]:
        with gen:
            return [gen.generate(q, h).text for q, h in zip(asked, hits, strict=True)]

    reference = answers(LlamaCppGenerator(n_threads=args.threads, lora=str(adapter)))
    base_answers = answers(LlamaCppGenerator(n_threads=args.threads))
    out: dict[str, Any] = {
        "split": args.split,
        "questions": len(asked),
        "base_same_as_adapter": sum(a == b for a, b in zip(base_answers, reference, strict=True)),
        "types": {},
    }
    for kind in args.types.split(","):
        path = work / f"merged-{kind}.gguf"
        began = time.perf_counter()
        merge_gguf(adapter, path, weight_type=kind)
        seconds = time.perf_counter() - began
        got = answers(LlamaCppGenerator(str(path), n_threads=args.threads))
        same = sum(a == b for a, b in zip(got, reference, strict=True))
        out["types"][kind] = {
            "merge_seconds": seconds,
            "bytes": path.stat().st_size,
            "delta_kept": _kept(base, path, adapter),
            "same_as_adapter": same,
            "differs": [
                {"question": q, "adapter": r, "merged": g}
                for q, r, g in zip(asked, reference, got, strict=True)
                if r != g
            ][:5],
        }
        print(kind, json.dumps({k: v for k, v in out["types"][kind].items() if k != "differs"}))
    out["base_bytes"] = base.stat().st_size
    out["load_average"] = _load()
    target = work / f"merge-{args.split}.json"
    target.write_text(json.dumps(out, indent=1))
    print(f"base same as adapter: {out['base_same_as_adapter']}/{len(asked)} -> {target}")


def _figures(run: dict[str, Any], ids: set[str]) -> dict[str, float]:
    """The headline figures of one run, over the questions ``ids`` only (so a run on a
    smaller seeded sample, a subset of a larger one, compares on the same questions)."""
    rows = [q for q in run["answers"]["per_question"] if q["id"] in ids]
    cited = sum(q["citations"] for q in rows)
    removed = [r for r in run["removed"]["per_question"] if r[0] in ids and not r[2]]
    return {
        "questions": float(len(rows)),
        "answer contains gold": sum(q["contains_gold"] for q in rows) / len(rows),
        "citation precision": sum(q["correct_citations"] for q in rows) / cited if cited else 0.0,
        "citations": float(cited),
        "false refusals (answerable)": sum(q["refused"] for q in rows) / len(rows),
        "refused, answering paragraph removed": (
            sum(r[1] for r in removed) / len(removed) if removed else 0.0
        ),
        "removed: questions counted": float(len(removed)),
        "F1": sum(q["f1"] for q in rows) / len(rows),
        "latency mean (s)": sum(q["seconds"] for q in rows) / len(rows),
    }


def report(args: argparse.Namespace) -> None:
    work = Path(args.work)
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    decode: dict[str, list[Any]] = {}
    for label in ("base", "lora", "merged"):
        for part in sorted(work.glob(f"eval-{label}*.json")):
            data = json.loads(part.read_text())
            decode.setdefault(label, []).append(data["decode"])
            for run in data["runs"]:
                runs[(label, run["k"])] = run
    ks = sorted({k for _label, k in runs})
    labels = ("base", "lora", "merged")
    columns = [(label, k) for k in ks for label in labels if (label, k) in runs]
    ids: dict[int, set[str]] = {}
    for k in ks:  # the questions every run at this k asked
        sets = [{q["id"] for q in runs[c]["answers"]["per_question"]} for c in columns if c[1] == k]
        ids[k] = set.intersection(*sets)
    figures = {c: _figures(runs[c], ids[c[1]]) for c in columns}
    print("| measure | " + " | ".join(f"{label} k={k}" for label, k in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in figures[columns[0]]:
        cells = [figures[c][name] for c in columns]
        text = [f"{v:.0f}" if v.is_integer() and v > 1 else f"{v:.3f}" for v in cells]
        print(f"| {name} | " + " | ".join(text) + " |")
    for label, speeds in decode.items():
        print(label, "decode", speeds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    steps = parser.add_subparsers(dest="step", required=True)
    ex = steps.add_parser("examples")
    ex.add_argument("--squad", required=True)
    ex.add_argument("--kb", required=True)
    ex.add_argument("--max-questions", type=int, default=240)
    ex.add_argument("--refusal", type=float, default=0.3)
    tr = steps.add_parser("train")
    tr.add_argument("--rank", type=int, default=16)
    tr.add_argument("--epochs", type=float, default=1.0)
    tr.add_argument("--lr", type=float, default=4e-4)
    tr.add_argument("--accumulation", type=int, default=8)
    tr.add_argument("--steps", type=int, default=0, help="optimizer steps (0: --epochs)")
    tr.add_argument("--max-minutes", type=float, default=0.0)
    tr.add_argument("--layers", type=int, default=0, help="adapt the last N blocks only")
    add_precision(tr)
    tr.add_argument(
        "--no-checkpointing",
        action="store_true",
        help="keep the activations for the backward pass (more memory, less compute)",
    )
    ev = steps.add_parser("eval")
    ev.add_argument("--squad", required=True)
    ev.add_argument("--kb", required=True)
    ev.add_argument("--label", choices=("base", "lora", "merged"), required=True)
    ev.add_argument("--merged", help="with --label merged: the merged GGUF")
    ev.add_argument("--sample", type=int, default=60)
    ev.add_argument("--threads", type=int, default=1)
    ev.add_argument(
        "--ks",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1, 4],
        help="k values (a run split over processes writes eval-LABEL-kK.json)",
    )
    de = steps.add_parser("decode")
    de.add_argument("--squad", required=True)
    de.add_argument("--kb", required=True)
    de.add_argument("--questions", type=int, default=30)
    de.add_argument("--threads", type=int, default=1)
    de.add_argument("--merged", action="append", help="also time this GGUF (repeatable)")
    de.add_argument("--output", help="file name in WORK (default decode.json)")
    me = steps.add_parser("merge")
    me.add_argument("--squad", required=True)
    me.add_argument("--kb", required=True)
    me.add_argument("--questions", type=int, default=30)
    me.add_argument("--threads", type=int, default=1)
    me.add_argument("--split", choices=("train", "test"), default="train")
    me.add_argument("--types", default="auto,same,f32", help="weight types to merge as")
    steps.add_parser("report")
    for step in (ex, tr, ev, de, me, steps.choices["report"]):
        step.add_argument("--work", required=True)
        step.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = {"examples": examples, "train": train, "eval": evaluate, "decode": decode, "merge": merge}
    run.get(args.step, report)(args)


if __name__ == "__main__":
    main()
