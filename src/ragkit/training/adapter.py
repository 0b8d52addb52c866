"""The fast mode: a linear map on query vectors, trained in seconds, no re-indexing.

The kb's chunk vectors stay as they are; only the query vector is moved, by a square
matrix ``W`` (started at the identity) so that ``normalize(W q)`` lands nearer the
query's positive chunks than its negatives. It trains on vectors alone (the kb's
cached chunk vectors and the queries embedded once) with the same contrastive loss as
the full fine-tune (softmax over in-batch and hard negatives), plus a pull towards the
identity so a few hundred pairs cannot wreck the space. :class:`AdaptedEmbedder`
(:mod:`ragkit.embeddings.adapted`, re-exported here) applies it to ``embed_query``
only, and reports the base model id, so a kb opens with it unchanged.
:func:`~ragkit.training.fast.finetune_adapter` fits, judges and promotes one.

Example:
    >>> adapter = train_query_adapter(pairs, embedder)  # doctest: +SKIP
    >>> adapter.save("kb-adapter.npz")  # doctest: +SKIP
    >>> rag = RAG("./kb", embedder=AdaptedEmbedder(embedder, QueryAdapter.load("kb-adapter.npz")))
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.embeddings.adapted import (
    ADAPTER_FILE,
    AdaptedEmbedder,
    QueryAdapter,
    load_query_adapter,
)
from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder
from ragkit.training.negatives import embed_queries
from ragkit.training.pairs import Pair

__all__ = [
    "ADAPTER_FILE",
    "AdaptedEmbedder",
    "QueryAdapter",
    "load_query_adapter",
    "train_query_adapter",
]

logger = logging.getLogger(__name__)


def train_query_adapter(
    pairs: Sequence[Pair],
    embedder: Embedder,
    *,
    epochs: int = 20,
    min_steps: int = 0,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    temperature: float = 0.05,
    identity_weight: float = 1.0,
    seed: int = 0,
) -> QueryAdapter:
    """Fit a :class:`QueryAdapter` on ``pairs`` (hard negatives used when present).

    Vectors come from ``embedder`` (wrap it in the kb's ``CachedEmbedder`` and the
    passages cost nothing); the fit itself is a few thousand small matrix products.

    Args:
        pairs: training pairs.
        embedder: the kb's embedder.
        epochs: passes over the pairs.
        min_steps: at least this many optimizer steps: a small set of pairs gets more
            passes than ``epochs`` (a pass is one step per ``batch_size`` pairs).
        batch_size: pairs per step (in-batch negatives).
        learning_rate: Adam's rate.
        temperature: of the softmax over cosines (0.05: sentence-transformers' scale 20).
        identity_weight: weight of ``||W - I||^2`` in the loss.
        seed: the batch order and torch's seed.
    """
    import torch

    if len(pairs) < 2:
        raise ConfigurationError(f"need at least 2 pairs, got {len(pairs)}")
    queries = embed_queries(embedder, [p.query for p in pairs])
    positives = embedder.embed_documents([p.positive for p in pairs])
    negatives = [list(p.negatives[:1]) for p in pairs]
    has_neg = all(negatives)
    neg = embedder.embed_documents([n[0] for n in negatives]) if has_neg else None
    torch.manual_seed(seed)
    dim = queries.shape[1]
    weight = torch.nn.Parameter(torch.eye(dim))
    optimizer = torch.optim.Adam([weight], lr=learning_rate)
    q_all = torch.from_numpy(queries)
    p_all = torch.from_numpy(np.asarray(positives, dtype=np.float32))
    n_all = torch.from_numpy(np.asarray(neg, dtype=np.float32)) if neg is not None else None
    identity = torch.eye(dim)
    order = list(range(len(pairs)))
    rng = random.Random(seed)
    steps_per_epoch = -(-len(pairs) // batch_size)
    epochs = max(epochs, -(-min_steps // steps_per_epoch))
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = torch.tensor(order[start : start + batch_size])
            q = torch.nn.functional.normalize(q_all[idx] @ weight.T, dim=1)
            docs = p_all[idx] if n_all is None else torch.cat([p_all[idx], n_all[idx]])
            logits = q @ docs.T / temperature
            loss: Any = torch.nn.functional.cross_entropy(logits, torch.arange(len(idx)))
            loss = loss + identity_weight * ((weight - identity) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    logger.info("query adapter trained on %d pairs, %d epochs", len(pairs), epochs)
    return QueryAdapter(weight.detach().numpy().astype(np.float32), embedder.model_id)
