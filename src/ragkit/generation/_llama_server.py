"""llama.cpp's own server, in-process, through ``xllamacpp``.

``xllamacpp`` ships prebuilt CPU wheels and wraps llama.cpp's server: a
``Server(CommonParams)`` loads the model, runs llama.cpp's scheduler on a thread of its
own, answers ``handle_chat_completions(request, callback)`` in-process (OpenAI-shaped
dicts, one callback call per streamed chunk) and also listens on a random loopback port,
where ragkit uses ``/tokenize`` and ``/apply-template`` (guarded by a per-process random
API key) to count prompt tokens exactly as the model will see them.
"""

from __future__ import annotations

import http.client
import json
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ragkit._deps import require
from ragkit.errors import GenerationError
from ragkit.generation._usage import UsageSlot
from ragkit.generation.prompt import ChatMessage
from ragkit.types import Usage

if TYPE_CHECKING:
    from ragkit.generation._llama_runtime import Options

__all__ = ["XllamacppRuntime"]


def _error_message(result: Mapping[str, Any]) -> str | None:
    """The message of a llama.cpp error payload (``{"error": {...}}``), else None."""
    error = result.get("error")
    if error is None:
        return None
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    return str(error)


class XllamacppRuntime:
    """llama.cpp's server, in-process, through ``xllamacpp.Server``."""

    name = "xllamacpp"

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None,
        verbose: bool,
        lora: Path | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        xllamacpp = require("xllamacpp", extra="llm", purpose="LlamaCppGenerator")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: the whole context window serves one request
        if n_threads is not None:
            params.cpuparams.n_threads = n_threads
            params.cpuparams_batch.n_threads = n_threads
        params.verbosity = 3 if verbose else 0
        if lora is not None:
            # llama.cpp applies the adapter when it loads the model (every request).
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(lora), lora_scale)]
        # The server also listens on a random loopback port; only this process, which
        # knows the key, may use it.
        self._key = secrets.token_urlsafe(24)
        params.api_keys = [self._key]
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:
            raise GenerationError(
                f"llama.cpp (xllamacpp) could not load {path}"
                + ("" if lora is None else f" with the LoRA adapter {lora}")
                + f": {exc}. Check that the file is a GGUF model llama.cpp supports (and the "
                "adapter a LoRA GGUF made for it) and that n_ctx fits in memory."
            ) from exc
        address = urlsplit(str(self._server.listening_address))
        self._host = address.hostname or "127.0.0.1"
        self._port = int(address.port or 80)
        props = self._http("GET", "/props")
        self.n_ctx = int(props["default_generation_settings"]["n_ctx"])
        self.last_timings: Mapping[str, float] | None = None
        self._usage = UsageSlot()

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

    @property
    def last_usage(self) -> Usage | None:
        """The token counts llama.cpp reported for this thread's last answer."""
        return self._usage.get()

    def count_tokens(self, text: str) -> int:
        # add_special: the BOS token, if the model has one, is part of every prompt.
        result = self._http("POST", "/tokenize", {"content": text, "add_special": True})
        return len(result["tokens"])

    def apply_template(self, messages: Sequence[ChatMessage]) -> str:
        result = self._http(
            "POST", "/apply-template", {"messages": [m.to_dict() for m in messages]}
        )
        return str(result["prompt"])

    @property
    def chat_format(self) -> Callable[[Sequence[ChatMessage]], str]:
        return self.apply_template

    @staticmethod
    def _request(
        messages: Sequence[ChatMessage], options: Options, *, stream: bool
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": [m.to_dict() for m in messages],
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

    def complete(self, messages: Sequence[ChatMessage], options: Options) -> str:
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
        self._usage.set(Usage.from_wire(result.get("usage")))
        return str(result["choices"][0]["message"].get("content") or "")

    def stream(self, messages: Sequence[ChatMessage], options: Options) -> Iterator[str]:
        # handle_chat_completions blocks and calls back once per chunk; a worker thread
        # runs it and hands chunks over, so the caller can consume them as a generator.
        # The callback's return value is llama.cpp's "stop" flag: closing the generator
        # early stops generation at the next token.
        self.last_timings = None
        self._usage.set(None)
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
                if chunk.get("usage"):
                    self._usage.set(Usage.from_wire(chunk["usage"]))
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content
        finally:
            stop.set()
            worker.join()

    def close(self) -> None:
        self._server = None  # the Server's destructor stops llama.cpp's loop
