"""Fine-tuning the answering LLM to quote, cite ``[n]`` and refuse (extra ``train``).

A pipeline of named steps, each usable alone:

1. examples (:mod:`~ragkit.training.generator.examples`): RAFT examples, the answering
   passage among distractors, or removed (the target is then the refusal), prompted
   exactly as the serving generator prompts;
2. train (:mod:`~ragkit.training.generator.lora`): LoRA SFT with peft and trl on CPU;
3. export (:mod:`~ragkit.training.generator.gguf_adapter`): llama.cpp's LoRA GGUF, for
   ``LlamaCppGenerator(lora=...)``;
4. :func:`finetune_generator` (:mod:`~ragkit.training.generator.pipeline`) runs them
   and writes a report; ``ragkit finetune generator`` calls it;
5. merge (:mod:`~ragkit.training.generator.gguf_merge`): the adapter folded into a copy
   of the base GGUF, served with no run-time adapter; ``ragkit finetune merge``.

Nothing here imports torch, peft or trl until a step runs.
"""

from typing import Any

__all__ = [
    "GeneratorExample",
    "GeneratorFinetuneReport",
    "LoraSettings",
    "finetune_generator",
    "merge_gguf",
    "pair_examples",
    "read_examples",
    "squad_examples",
    "train_lora",
    "write_examples",
    "write_gguf_adapter",
]

_WHERE = {
    "GeneratorExample": "ragkit.training.generator.examples",
    "GeneratorFinetuneReport": "ragkit.training.generator.pipeline",
    "LoraSettings": "ragkit.training.generator.lora",
    "finetune_generator": "ragkit.training.generator.pipeline",
    "merge_gguf": "ragkit.training.generator.gguf_merge",
    "pair_examples": "ragkit.training.generator.examples",
    "read_examples": "ragkit.training.generator.examples",
    "squad_examples": "ragkit.training.generator.examples",
    "train_lora": "ragkit.training.generator.lora",
    "write_examples": "ragkit.training.generator.examples",
    "write_gguf_adapter": "ragkit.training.generator.gguf_adapter",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.training.generator' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
