"""Re-ranking with a cross-encoder: the query and each chunk are read together."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragkit._deps import require
from ragkit._models import shared_model
from ragkit._quiet import quiet_loading
from ragkit.errors import ConfigurationError
from ragkit.reranking._mix import mix_scores
from ragkit.types import ScoredChunk

__all__ = ["CrossEncoderReranker"]

logger = logging.getLogger(__name__)

Activation = Literal["default", "sigmoid", "none"]
_ACTIVATIONS = ("default", "sigmoid", "none")

# Loaded models, shared by every reranker in the process with the same settings (a
# server answering for several knowledge bases loads the weights once).


def _is_local_path(model: str | os.PathLike[str]) -> bool:
    """True when ``model`` can only mean a directory (hub ids are ``name`` or ``org/name``)."""
    if isinstance(model, os.PathLike):
        return True
    if Path(model).expanduser().exists():
        return True
    return (
        model.startswith(("/", ".", "~", "\\"))
        or (len(model) > 1 and model[1] == ":")  # Windows drive
        or model.count("/") > 1
        or "\\" in model
    )


def _recorded_weight(folder: Path) -> float | None:
    """The mix weight ``ragkit finetune reranker`` recorded in ``folder``, if any."""
    from ragkit.training.promote import model_record

    weight = model_record(folder).get("weight")
    return float(weight) if isinstance(weight, (int, float)) and 0 <= weight <= 1 else None


class CrossEncoderReranker:
    """Scores each (query, chunk text) pair with a sentence-transformers ``CrossEncoder``.

    A cross-encoder reads the question and the passage together, so it judges relevance
    better than the cosine between two separately computed embeddings, at the cost of
    one forward pass per candidate. Use it on a few dozen candidates
    (``RetrievalQA(..., fetch_k=20)``), not on the whole collection.

    The model loads on first use (or :meth:`warm_up`) and is shared by every reranker in
    the process with the same model, device and ``max_length``.

    Example:
        >>> reranker = CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2")
        >>> qa = RetrievalQA(retriever, generator, reranker=reranker, fetch_k=20)  # doctest: +SKIP

    Args:
        model: a model name on the Hugging Face hub (needs network access the first
            time) or a local directory holding one (works offline).
        batch_size: pairs per forward pass.
        max_length: longest input in tokens (query and chunk together); longer pairs are
            truncated. ``None`` keeps the model's own limit.
        device: torch device, ``"cpu"`` by default.
        activation: what turns the model's raw output into the score: ``"default"``
            (whatever the model is configured with; sentence-transformers uses a
            sigmoid for one-output models, giving scores in 0..1), ``"sigmoid"``, or
            ``"none"`` (raw logits). The order is the same either way.
        model_kwargs: passed to ``CrossEncoder`` as keyword arguments.
        weight: share of the cross-encoder in the final order: 1 ranks by it alone;
            below 1 its scores are mixed with the retriever's, each standardized over
            the hits (``(1 - weight) * z(retriever) + weight * z(cross-encoder)``, as
            :class:`BM25Reranker` does). ``None``: the weight recorded in a folder
            from ``ragkit finetune reranker`` (chosen on its held-out split), else 1.

    Raises:
        ConfigurationError: a setting is invalid, or ``model`` is a local path that does
            not exist or holds no model (``config.json``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        max_length: int | None = None,
        device: str = "cpu",
        activation: Activation = "default",
        model_kwargs: dict[str, Any] | None = None,
        weight: float | None = None,
    ) -> None:
        if weight is not None and not 0.0 <= weight <= 1.0:
            raise ConfigurationError(f"weight must be between 0 and 1, got {weight}")
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be positive, got {batch_size}")
        if max_length is not None and max_length <= 0:
            raise ConfigurationError(f"max_length must be positive, got {max_length}")
        if activation not in _ACTIVATIONS:
            raise ConfigurationError(
                f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}, "
                f"got {activation!r}"
            )
        if _is_local_path(model):
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ConfigurationError(
                    f"cross-encoder model directory {str(path)!r} does not exist. Pass a "
                    "local model directory or a hub name such as "
                    "'cross-encoder/ms-marco-MiniLM-L-6-v2'."
                )
            if not (path / "config.json").is_file():
                raise ConfigurationError(
                    f"{str(path)!r} holds no model (no config.json). Save one there with "
                    "CrossEncoder(...).save(path) or save_pretrained(path)."
                )
            self.model_name = str(path)
            if weight is None:
                weight = _recorded_weight(path)
        else:
            self.model_name = str(model)
        self.weight = 1.0 if weight is None else weight
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.activation = activation
        self._model_kwargs = dict(model_kwargs or {})
        self._model: Any = None
        self._predict_kwargs: dict[str, Any] = {}

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""
        self._load()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        key = (
            "cross-encoder",
            self.model_name,
            self.device,
            self.max_length,
            repr(sorted(self._model_kwargs.items())),
        )
        model = shared_model(key, self._create)
        self._predict_kwargs = self._activation_kwargs(model)
        self._model = model
        return model

    def _create(self) -> Any:
        st = require(
            "sentence_transformers",
            extra="embeddings",
            purpose="CrossEncoderReranker",
            package="sentence-transformers",
        )
        logger.info("loading cross-encoder %s", self.model_name)
        try:
            with quiet_loading():
                return st.CrossEncoder(
                    self.model_name,
                    device=self.device,
                    max_length=self.max_length,
                    **self._model_kwargs,
                )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"Could not load cross-encoder {self.model_name!r}: {exc}. Pass a "
                "local model directory, or a hub name on a machine with network "
                "access."
            ) from exc

    def _activation_kwargs(self, model: Any) -> dict[str, Any]:
        if self.activation == "default":
            return {}
        import torch

        fn = torch.nn.Sigmoid() if self.activation == "sigmoid" else torch.nn.Identity()
        # sentence-transformers 4 renamed ``activation_fct`` to ``activation_fn``.
        params = inspect.signature(model.predict).parameters
        name = "activation_fn" if "activation_fn" in params else "activation_fct"
        return {name: fn}

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """The cross-encoder's score for each ``(query, text)`` pair, in order."""
        if not texts:
            return []
        model = self._load()
        raw = model.predict(
            [(query, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            **self._predict_kwargs,
        )
        scores = np.asarray(raw, dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1:
            raise ConfigurationError(
                f"cross-encoder {self.model_name!r} gives {scores.shape[-1]} scores per "
                "pair; a reranker needs a model with a single relevance output "
                "(num_labels=1)"
            )
        return [float(s) for s in scores]

    def rerank(self, query: str, hits: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        """The ``k`` hits the cross-encoder scores highest, best first, with its scores
        (with a ``weight`` below 1: the best by the mixed score, with that score).

        Ties keep the retriever's order.
        """
        if k <= 0 or not hits:
            return []
        scores = self.score(query, [hit.chunk.text for hit in hits])
        if self.weight < 1.0:
            return mix_scores(hits, scores, self.weight, k)
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:k]
        logger.debug("cross-encoder rerank %r: %d hits -> %d", query, len(hits), len(order))
        return [ScoredChunk(hits[i].chunk, scores[i]) for i in order]
