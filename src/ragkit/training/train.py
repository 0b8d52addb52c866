"""Step 3, train: sentence-transformers' own trainers on the pairs, best checkpoint kept.

* The embedder: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``
  (in-batch negatives plus the mined hard ones) or ``GISTEmbedLoss`` with the base
  model as the guide (it drops in-batch "negatives" the base model ranks above the
  positive: fewer false negatives when a kb repeats itself).
* The reranker: ``CrossEncoderTrainer`` with ``BinaryCrossEntropyLoss`` on (query,
  passage, 0/1) rows, starting from the base weights (by default the bundled
  all-MiniLM-L6-v2: its encoder, with a new one-output head).

Batches never hold the same text twice (the ``no_duplicates`` batch sampler): with
in-batch negatives a duplicate would be a positive scored as a negative. The held-out
task (:class:`~ragkit.training.evaluate.HeldOut`) is scored after every epoch, and the
best epoch's weights are the result (``load_best_model_at_end``).
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragkit._deps import require
from ragkit.embeddings.sentence_transformers import uses_bf16
from ragkit.errors import ConfigurationError
from ragkit.training.evaluate import HeldOut
from ragkit.training.pairs import Pair, Progress

__all__ = ["TrainConfig", "TrainResult", "load_cross_encoder", "train_embedder", "train_reranker"]

logger = logging.getLogger(__name__)

Loss = Literal["mnrl", "gist"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training settings (the defaults were chosen on SciFact's training queries).

    Attributes:
        epochs: passes over the pairs; the best epoch on the held-out split is kept.
        batch_size: pairs per step (also the in-batch negatives of the embedder).
        learning_rate: peak rate, after a linear warm-up over ``warmup_ratio``.
        loss: ``"mnrl"`` or ``"gist"`` (embedder only).
        negatives: hard negatives per pair given to the loss (0: in-batch only).
        max_seq_length: longest input in tokens (``None``: the model's own).
        seed: data order and initialisation.
        precision: ``"bfloat16"`` trains in mixed precision (bfloat16 matrix products,
            float32 weights and optimizer), ``"float32"`` does not, ``"auto"`` (the
            default) uses bfloat16 on a CPU that multiplies it natively (Intel AMX or
            AVX512-BF16: about 1.7x faster steps on MiniLM), else float32.
    """

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    loss: Loss = "mnrl"
    negatives: int = 1
    max_seq_length: int | None = None
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self) -> None:
        uses_bf16(self.precision, "cpu")  # validates the name
        if self.epochs <= 0 or self.batch_size <= 1 or self.learning_rate <= 0:
            raise ConfigurationError("epochs must be positive, batch_size above 1, lr > 0")
        if self.loss not in ("mnrl", "gist"):
            raise ConfigurationError(f"loss must be 'mnrl' or 'gist', got {self.loss!r}")
        if self.negatives < 0:
            raise ConfigurationError("negatives must be >= 0")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A trained model folder and how the training went.

    Attributes:
        path: the folder holding the best checkpoint's model.
        score: its held-out nDCG@10.
        pairs: training pairs (rows for the reranker).
        steps: optimizer steps.
        seconds: wall time of the training loop.
        per_query: the embedder's: each held-out query's nDCG@10 under the kept model
            (:meth:`HeldOut.embedder_per_query`, whose mean is ``score``), so the
            promotion decision does not encode the pool again; empty for a reranker.
    """

    path: Path
    score: float
    pairs: int
    steps: int
    seconds: float
    per_query: tuple[float, ...] = ()


def _st() -> Any:
    require("datasets", extra="train", purpose="ragkit.training")
    require("accelerate", extra="train", purpose="ragkit.training")
    return require(
        "sentence_transformers",
        extra="train",
        purpose="ragkit.training",
        package="sentence-transformers",
    )


def _padded_negatives(pairs: Sequence[Pair], n: int, seed: int) -> list[list[str]]:
    """``n`` negatives per pair: its own first, then other pairs' positives at random
    (a pair short of mined negatives still fits the loss's fixed columns)."""
    rng = random.Random(seed)
    positives = [p.positive for p in pairs]
    rows = []
    for pair in pairs:
        negatives = [t for t in pair.negatives if t != pair.positive][:n]
        while len(negatives) < n and len(positives) > 1:
            other = rng.choice(positives)
            if other != pair.positive and other not in negatives:
                negatives.append(other)
        rows.append(negatives)
    return rows


def _callback(progress: Progress | None, what: str) -> Any:
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress is not None:
                progress(what, int(state.global_step), int(state.max_steps))

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            metrics = kwargs.get("metrics") or {}
            logger.info("%s step %d: %s", what, state.global_step, metrics)

    return _Report()


def _arguments(
    cls: Any, config: TrainConfig, work: Path, metric: str, *, rows: int, extra: dict[str, Any]
) -> Any:
    steps_per_epoch = max(1, -(-rows // config.batch_size))
    return cls(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * steps_per_epoch * config.epochs),
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,  # the best epoch's weights are all that is kept
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        logging_steps=max(1, steps_per_epoch // 4),
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        bf16=uses_bf16(config.precision, "cpu"),
        **extra,
    )


def train_embedder(
    train: Sequence[Pair],
    heldout: HeldOut,
    *,
    base: str | Path,
    work: str | Path,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Fine-tune the sentence-transformers model ``base`` on ``train``.

    Args:
        train: the training side of the split.
        heldout: the held-out task; the best epoch on it is kept.
        base: a model folder (or a name the hub can serve).
        work: a scratch folder; the result is ``work/model``.
        config: the settings (:class:`TrainConfig`).
        progress: called with ``("train", step, steps)``.
    """
    config = config or TrainConfig()
    st = _st()
    from sentence_transformers.sentence_transformer import losses

    dataset_cls: Any = require("datasets", extra="train", purpose="ragkit.training").Dataset

    if len(train) < 2:
        raise ConfigurationError(f"need at least 2 training pairs, got {len(train)}")
    work = Path(work)
    model = st.SentenceTransformer(str(base), device="cpu")
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    columns: dict[str, list[str]] = {
        "anchor": [p.query for p in train],
        "positive": [p.positive for p in train],
    }
    if config.negatives:
        rows = _padded_negatives(train, config.negatives, config.seed)
        for i in range(config.negatives):
            columns[f"negative_{i + 1}"] = [r[i] for r in rows]
    dataset = dataset_cls.from_dict(columns)
    loss: Any
    if config.loss == "gist":
        guide = st.SentenceTransformer(str(base), device="cpu")
        loss = losses.GISTEmbedLoss(model, guide)
    else:
        loss = losses.MultipleNegativesRankingLoss(model)
    evaluator = heldout.embedder_evaluator()
    args = _arguments(
        st.SentenceTransformerTrainingArguments,
        config,
        work / "checkpoints",
        f"eval_{heldout.embedder_key}",
        rows=len(train),
        extra={"batch_sampler": "no_duplicates"},
    )
    trainer = st.SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[_callback(progress, "train")],
    )
    began = time.perf_counter()
    state = trainer.train()
    seconds = time.perf_counter() - began
    per_query = tuple(heldout.embedder_per_query(model))  # the best epoch's model
    out = work / "model"
    model.save_pretrained(str(out))
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    score = sum(per_query) / max(1, len(per_query))
    return TrainResult(out, score, len(train), int(state.global_step), seconds, per_query)


def load_cross_encoder(base: str | Path) -> Any:
    """A ``CrossEncoder`` from ``base``; a plain encoder (such as the bundled MiniLM
    sentence-transformers folder) gets a new one-output head."""
    st = _st()
    return st.CrossEncoder(str(base), num_labels=1, device="cpu")


def train_reranker(
    train: Sequence[Pair],
    heldout: HeldOut,
    samples: list[dict[str, Any]],
    *,
    base: str | Path,
    work: str | Path,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a cross-encoder from ``base`` on (query, positive, 1) and (query,
    negative, 0) rows, ``config.negatives`` negatives per pair (at least 1).

    Args:
        train: the training side of the split (with mined negatives).
        heldout: the held-out task.
        samples: its reranking samples (:meth:`HeldOut.reranker_samples`).
        base: the starting weights.
        work: a scratch folder; the result is ``work/model``.
        config: the settings.
        progress: called with ``("train", step, steps)``.
    """
    config = config or TrainConfig(learning_rate=5e-5, negatives=3)
    st = _st()
    from sentence_transformers.cross_encoder import losses

    dataset_cls: Any = require("datasets", extra="train", purpose="ragkit.training").Dataset

    if len(train) < 2:
        raise ConfigurationError(f"need at least 2 training pairs, got {len(train)}")
    work = Path(work)
    model = load_cross_encoder(base)
    if config.max_seq_length is not None:
        model.max_length = config.max_seq_length
    negatives = _padded_negatives(train, max(1, config.negatives), config.seed)
    queries, passages, labels = [], [], []
    for pair, negs in zip(train, negatives, strict=True):
        for text, label in [(pair.positive, 1.0)] + [(n, 0.0) for n in negs]:
            queries.append(pair.query)
            passages.append(text)
            labels.append(label)
    dataset = dataset_cls.from_dict({"query": queries, "passage": passages, "label": labels})
    # Positives are 1 in (1 + negatives) rows: weigh them up so the head is not
    # pushed to say "irrelevant" to everything.
    import torch

    loss = losses.BinaryCrossEntropyLoss(
        model, pos_weight=torch.tensor(float(max(1, config.negatives)))
    )
    evaluator = heldout.reranker_evaluator(samples)
    args = _arguments(
        st.CrossEncoderTrainingArguments,
        config,
        work / "checkpoints",
        f"eval_{heldout.reranker_key}",
        rows=len(labels),
        extra={},
    )
    trainer = st.CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[_callback(progress, "train")],
    )
    began = time.perf_counter()
    state = trainer.train()
    seconds = time.perf_counter() - began
    score = float(evaluator(model)[heldout.reranker_key])
    out = work / "model"
    model.save_pretrained(str(out))
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    return TrainResult(out, score, len(labels), int(state.global_step), seconds)
