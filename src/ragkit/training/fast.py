"""The fast mode's run, what ``ragkit finetune adapter`` does: a query adapter fitted on
a kb's cached vectors, judged and promoted as a fine-tuned model is.

The steps are the full fine-tune's (:mod:`ragkit.training.pipeline`): pairs, the
held-out split by document, hard negatives mined from the kb, then a
:class:`~ragkit.training.adapter.QueryAdapter` fitted on the training pairs for each
identity weight, the best weight chosen on the held-out queries, and the adapter
promoted only when it beats the kb's own embedder there (the same bootstrap bound,
:func:`~ragkit.training.promote.promote`). What is promoted is the adapter the split
judged, fitted on the training pairs. Nothing is re-embedded: the kb's chunk vectors
come from its embedding cache, and only queries are moved.

Example:
    >>> with RAG("./kb") as rag:  # doctest: +SKIP
    ...     report = finetune_adapter("./kb-adapter", kb=rag, pairs="pairs.jsonl")
    ...     if report.promoted:
    ...         rag.use_query_adapter("./kb-adapter")
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragkit.embeddings.adapted import unadapted
from ragkit.errors import ConfigurationError
from ragkit.training.adapter import ADAPTER_FILE, AdaptedEmbedder, train_query_adapter
from ragkit.training.negatives import NegativeRules
from ragkit.training.pairs import Pair, Progress
from ragkit.training.pipeline import Synthetic, check_confidence, make_pairs, pair_counts, prepare
from ragkit.training.promote import CONFIDENCE, FinetuneReport, check_output, promote

__all__ = ["IDENTITY_WEIGHTS", "finetune_adapter"]

logger = logging.getLogger(__name__)

#: The identity weights tried (the pull of the matrix towards the identity); the
#: held-out split picks one.
IDENTITY_WEIGHTS = (0.01, 0.1, 1.0)


def finetune_adapter(
    out: str | Path,
    *,
    kb: Any,
    pairs: Sequence[Pair] | str | Path | None = None,
    synthetic: Synthetic | None = None,
    llm: Any = None,
    rules: NegativeRules | None = None,
    eval_pairs: Sequence[Pair] | None = None,
    heldout_fraction: float = 0.1,
    heldout_pool: int = 1000,
    max_chunks: int | None = None,
    weights: Sequence[float] = IDENTITY_WEIGHTS,
    epochs: int = 20,
    min_steps: int = 200,
    min_gain: float = 0.0,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Fit a query adapter for the kb ``kb`` and put it in ``out`` when it beats the
    kb's embedder on the held-out documents.

    Args:
        out: the output folder (new, empty, or an earlier run's): ``adapter.npz`` when
            promoted, and ``finetune-report.json`` either way.
        kb: the open :class:`~ragkit.RAG` whose embedder the adapter is for.
        pairs, synthetic, llm, max_chunks: the training pairs, as for
            :func:`~ragkit.training.pipeline.finetune_embedder`.
        rules: hard-negative rules.
        eval_pairs: a held-out set of your own instead of the split by document.
        heldout_fraction: share of the pairs held out (by document).
        heldout_pool: passages the held-out queries are searched among.
        weights: the identity weights to try.
        epochs: passes over the training pairs per fit.
        min_steps: optimizer steps per fit at least (more passes for a few dozen pairs;
            SciFact's 800 training pairs take 260 steps in 20 passes).
        min_gain: how much the held-out nDCG@10 must rise for promotion.
        confidence: how sure that rise must be (0: the means alone decide).
        seed: the split, the sampling and the fits.
        progress: called with ``(step, done, total)``.

    Raises:
        ConfigurationError: no kb, no weights, or a bad ``confidence``.
    """
    if kb is None:
        raise ConfigurationError("a query adapter is fitted for a kb: pass kb=RAG(...) (--kb)")
    if not weights:
        raise ConfigurationError("give at least one identity weight")
    check_confidence(confidence)
    folder = check_output(out)
    embedder = unadapted(kb.embedder)  # cached document vectors, plain queries
    times: dict[str, float] = {}
    began = time.perf_counter()
    all_pairs = make_pairs(
        pairs=pairs, kb=kb, synthetic=synthetic, llm=llm, max_chunks=max_chunks,
        seed=seed, progress=progress,
    )  # fmt: skip
    times["pairs"] = time.perf_counter() - began
    began = time.perf_counter()
    train, heldout, task, _corpus = prepare(
        all_pairs, kb=kb, base_embedder=embedder, rules=rules or NegativeRules(),
        eval_pairs=eval_pairs, heldout_fraction=heldout_fraction, pool=heldout_pool,
        seed=seed, mine=True, progress=progress,
    )  # fmt: skip
    times["negatives"] = time.perf_counter() - began
    began = time.perf_counter()
    base_scores = task.vectors_per_query(embedder)
    times["evaluate_base"] = time.perf_counter() - began
    began = time.perf_counter()
    fits = {}
    for weight in weights:
        adapter = train_query_adapter(
            train,
            embedder,
            epochs=epochs,
            min_steps=min_steps,
            identity_weight=weight,
            seed=seed,
        )
        fits[weight] = (adapter, task.vectors_per_query(AdaptedEmbedder(embedder, adapter)))
        logger.info("identity weight %g: held-out nDCG@10 %.4f", weight, _mean(fits[weight][1]))
    times["train"] = time.perf_counter() - began
    best = max(fits, key=lambda w: _mean(fits[w][1]))
    adapter, trained_scores = fits[best]
    with tempfile.TemporaryDirectory(prefix="ragkit-adapter-") as work:
        adapter.save(Path(work) / ADAPTER_FILE)
        report = promote(
            kind="adapter", out=folder, base=embedder.model_id, base_id=embedder.model_id,
            base_score=_mean(base_scores), trained=Path(work),
            trained_score=_mean(trained_scores), min_gain=min_gain,
            per_query=(base_scores, trained_scores), confidence=confidence,
            recorded=({}, {"identity_weight": best}),
            pairs=pair_counts(all_pairs, train, heldout, pairs, synthetic),
            settings={"epochs": epochs, "min_steps": min_steps, "identity_weight": best,
                      "seed": seed,
                      "heldout_by_identity_weight": {
                          str(w): _mean(s) for w, (_, s) in fits.items()}},
            seconds=times,
        )  # fmt: skip
    logger.info("%s", report)
    return report


def _mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores)
