"""Fine-tuning the retriever and training a reranker on a kb's own data (extra ``train``).

A pipeline of named steps, each usable alone (as in sentence-transformers' examples):

1. make pairs (:mod:`~ragkit.training.pairs`): a JSONL file, questions an LLM writes for
   chunks (round-trip filtered), or the model-free inverse cloze task;
2. mine negatives (:mod:`~ragkit.training.negatives`): hard negatives from the kb;
3. train (:mod:`~ragkit.training.train`): sentence-transformers' trainers;
4. evaluate (:mod:`~ragkit.training.evaluate`): a held-out split by document;
5. promote (:mod:`~ragkit.training.promote`): the trained model only when it beats the
   base on that split.

:func:`finetune_embedder` and :func:`finetune_reranker` run them all (what
``ragkit finetune`` calls); :func:`finetune_adapter` (:mod:`~ragkit.training.fast`) runs
them for the fast mode, a linear map on query vectors (:mod:`~ragkit.training.adapter`,
no re-indexing); :mod:`~ragkit.training.reembed` puts a fine-tuned embedder in a kb.
Nothing here imports torch until a step runs.
"""

from typing import Any

__all__ = [
    "FinetuneReport",
    "NegativeRules",
    "Pair",
    "TrainConfig",
    "finetune_adapter",
    "finetune_embedder",
    "finetune_reranker",
    "read_pairs",
    "write_pairs",
]

_WHERE = {
    "FinetuneReport": "ragkit.training.promote",
    "NegativeRules": "ragkit.training.negatives",
    "Pair": "ragkit.training.pairs",
    "TrainConfig": "ragkit.training.train",
    "finetune_adapter": "ragkit.training.fast",
    "finetune_embedder": "ragkit.training.pipeline",
    "finetune_reranker": "ragkit.training.pipeline",
    "read_pairs": "ragkit.training.pairs",
    "write_pairs": "ragkit.training.pairs",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.training' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
