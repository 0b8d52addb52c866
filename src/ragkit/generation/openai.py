"""Any OpenAI-compatible chat-completions endpoint, over plain HTTP with httpx.

OpenAI, vLLM, Ollama, llama.cpp's ``llama-server``, LM Studio and most hosted gateways
speak the same ``POST {base_url}/chat/completions`` protocol. ragkit talks to it with
httpx directly rather than the ``openai`` SDK: one small, typed dependency instead of
the SDK and its pydantic models, and the same code for every server. Retries, server
errors and server-sent events are in ``_openai_http.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ragkit.errors import ConfigurationError, GenerationError
from ragkit.generation._openai_http import (
    Retry,
    chat_content,
    httpx_module,
    send,
    stream_deltas,
    usage_in,
)
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    ChatMessage,
    Prompt,
    PromptBuilder,
)
from ragkit.types import Generation, ScoredChunk, Usage

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIGenerator"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIGenerator:
    """Answers with any OpenAI-compatible chat model: OpenAI, vLLM, Ollama, llama.cpp
    server, LM Studio.

    Sends the ragkit instruction as the system message and the numbered contexts plus
    the question as the user message. The prompt is budgeted with tiktoken against
    ``context_window`` (set it to the served model's context length), keeping
    ``max_tokens`` free for the answer; contexts that do not fit are dropped whole.

    Failed requests are retried with exponential backoff and jitter on 408, 409, 429 and
    5xx answers, connection errors and timeouts, waiting what a ``Retry-After`` (or
    ``retry-after-ms``) header asks for. A stream is retried only until the server
    starts answering: text already handed out cannot be taken back.

    Example:
        >>> gen = OpenAIGenerator("llama3.2", base_url="http://localhost:11434/v1")
        >>> gen.generate("What is X?", hits).text  # doctest: +SKIP
        'X is ... [1].'

    Args:
        model: model name; default ``$RAGKIT_LLM_MODEL``, then ``$OPENAI_MODEL``.
        base_url: the API root, up to ``/v1``; default ``$OPENAI_BASE_URL``, then
            ``https://api.openai.com/v1``.
        api_key: sent as ``Authorization: Bearer``; default ``$OPENAI_API_KEY``. Local
            servers usually need none.
        timeout: seconds to connect, and to wait for each piece of the answer.
        max_retries: further attempts after a failed one (0 to try once).
        context_window: the served model's context length, in tokens.
        max_tokens: longest answer, in tokens; also kept free in the prompt budget.
        temperature: 0 for the most deterministic answer.
        seed: sent when set; servers that support it sample reproducibly.
        encoding: tiktoken encoding for the budget (``o200k_base`` for GPT-4o and later).
        system: the system message (the instruction).
        template: the user message; contains ``{context}`` and ``{question}``.
        extra_body: more request fields, e.g. ``{"top_p": 0.9}`` or a server's own
            options.
        headers: more HTTP headers.
        backoff: first retry delay in seconds; doubles each attempt, up to ``max_backoff``.
        max_backoff: longest computed delay between attempts.
        max_retry_after: longest wait honoured from a ``Retry-After`` header.
        client: an ``httpx.Client`` to send requests with (proxies, custom TLS); the
            generator then does not close it.
        stream_usage: ask for the token counts at the end of a stream
            (``stream_options.include_usage``). Default: only from api.openai.com, as
            some OpenAI-compatible servers refuse the field; answers that are not
            streamed carry the counts whenever the server sends them.

    Raises:
        ConfigurationError: no model, a bad URL, or no API key for api.openai.com.
        MissingDependencyError: httpx is missing (``pip install "ragkit[openai]"``).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        context_window: int = 4096,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        encoding: str = "cl100k_base",
        system: str = DEFAULT_SYSTEM,
        template: str = DEFAULT_USER_TEMPLATE,
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        client: httpx.Client | None = None,
        stream_usage: bool | None = None,
    ) -> None:
        model = model or os.environ.get("RAGKIT_LLM_MODEL") or os.environ.get("OPENAI_MODEL")
        if not model:
            raise ConfigurationError(
                "OpenAIGenerator needs a model name: pass model=... or set RAGKIT_LLM_MODEL "
                "(or OPENAI_MODEL)"
            )
        base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"base_url must be an http(s) URL such as http://localhost:8000/v1, "
                f"got {base_url!r}"
            )
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not api_key and parts.hostname == "api.openai.com":
            raise ConfigurationError(
                "api.openai.com needs an API key: pass api_key=... or set OPENAI_API_KEY "
                "(or point base_url / OPENAI_BASE_URL at another server)"
            )
        if timeout <= 0 or max_retries < 0:
            raise ConfigurationError(
                f"timeout must be positive and max_retries >= 0, got timeout={timeout}, "
                f"max_retries={max_retries}"
            )
        self.model = model
        self.base_url = base_url
        self.url = f"{base_url}/chat/completions"
        self.api_key = api_key or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.stream_usage = (
            parts.hostname == "api.openai.com" if stream_usage is None else stream_usage
        )
        self.builder = PromptBuilder(
            template,
            system=system,
            context_window=context_window,
            answer_tokens=max_tokens,
            encoding=encoding,
        )
        from ragkit import __version__

        self._request_headers = {"User-Agent": f"ragkit/{__version__}", **self.headers}
        if self.api_key:
            self._request_headers["Authorization"] = f"Bearer {self.api_key}"
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()

    # -- HTTP ------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx_module().Client(timeout=self.timeout)
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a client passed in stays open)."""
        with self._client_lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, body: Mapping[str, Any], *, stream: bool) -> httpx.Response:
        retry = Retry(self.max_retries, self.backoff, self.max_backoff, self.max_retry_after)
        return send(
            self._http(),
            self.url,
            body,
            headers=self._request_headers,
            stream=stream,
            timeout=self.timeout,
            retry=retry,
        )

    def _body(self, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if stream and self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra_body)
        if stream:
            body["stream"] = True
        return body

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """Send chat messages as they are; return the answer text."""
        return self._complete(messages)[0]

    def _complete(self, messages: Sequence[ChatMessage]) -> tuple[str, Usage | None]:
        response = self._send(self._body(messages, stream=False), stream=False)
        try:
            data = response.json()
        except ValueError as exc:
            raise GenerationError(f"{self.url} answered with invalid JSON: {exc}") from exc
        return chat_content(data, self.url), usage_in(data)

    def complete_prompt(self, prompt: str) -> str:
        """Send ``prompt`` alone, as one user message (no answering instruction); return
        the reply. :func:`~ragkit.retrieval.rewrite.as_completion` calls it, so the
        generator can also rewrite queries and condense follow-up questions."""
        return self.complete([ChatMessage("user", prompt)])

    def stream_messages(
        self, messages: Sequence[ChatMessage], on_usage: Callable[[Usage], None] | None = None
    ) -> Iterator[str]:
        """Send chat messages with ``stream: true``; yield the text deltas. ``on_usage``
        is called with the token counts when the server sends them."""
        response = self._send(self._body(messages, stream=True), stream=True)
        yield from stream_deltas(response, self.url, self.timeout, on_usage)

    # -- Generator -------------------------------------------------------------------

    def prompt(self, question: str, contexts: Sequence[ScoredChunk]) -> Prompt:
        """The prompt the model would read for ``question`` and ``contexts``."""
        return self.builder.build(question, contexts)

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        prompt = self.builder.build(question, contexts)
        text, usage = self._complete(prompt.messages)
        return Generation(
            text=text.strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=usage,
        )

    def stream(self, question: str, contexts: Sequence[ScoredChunk]) -> Iterator[str | Generation]:
        prompt = self.builder.build(question, contexts)
        parts: list[str] = []
        counted: list[Usage] = []
        for delta in self.stream_messages(prompt.messages, counted.append):
            parts.append(delta)
            yield delta
        yield Generation(
            text="".join(parts).strip(),
            contexts=prompt.contexts,
            dropped=prompt.dropped,
            model=self.model,
            usage=counted[-1] if counted else None,
        )
