"""A deterministic OpenAI-compatible chat-completions server on loopback, for tests.

A real HTTP server (stdlib ``http.server``, one thread per request) bound to
``127.0.0.1`` on a free port: clients under test go through their whole network stack,
as they do with httpx's ``MockTransport``, which is a real transport. It answers
``POST /v1/chat/completions`` (plain JSON, or server-sent events with ``"stream":
true``) and ``GET /v1/models``, and can be told to fail, to be slow, or to demand an
API key. Its ``usage`` counts the pieces of :func:`tokens` read (all messages) and
written; a stream sends it in a last chunk when asked (``stream_options``)::

    with FakeOpenAIServer(answer="Paris [1].") as server:
        server.fail(429, times=2, retry_after="0")
        gen = OpenAIGenerator("fake-chat", base_url=server.base_url)
        gen.generate("Capital of France?", hits).text    # "Paris [1]." on the 3rd try
        len(server.requests)                             # 3
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_ANSWER", "FakeOpenAIServer", "RecordedRequest"]

#: What the server answers unless told otherwise: a claim citing the first passage.
DEFAULT_ANSWER = "The answer is in the first passage [1]."

_TOKEN = re.compile(r"\s*\S+|\s+")

Reply = str | Callable[[Sequence[Mapping[str, Any]]], str]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: ``GET`` or ``POST``.
        path: the request path, e.g. ``/v1/chat/completions``.
        headers: the request headers, names in lower case.
        body: the JSON body, parsed; None when there was none or it was not JSON.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any = None


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def tokens(text: str) -> list[str]:
    """``text`` in the pieces the server streams: each word with the space before it."""
    return _TOKEN.findall(text)


def _usage(body: Mapping[str, Any], pieces: list[str]) -> dict[str, int]:
    """Token counts as the server counts: the pieces of the messages read and written."""
    read = sum(len(tokens(str(m.get("content") or ""))) for m in body.get("messages") or ())
    return {"prompt_tokens": read, "completion_tokens": len(pieces),
            "total_tokens": read + len(pieces)}  # fmt: skip


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeOpenAIServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection; a stream ends at close

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test double stays quiet

    def _json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "server_error"
        if status in (400, 401, 404):
            kind = "invalid_request_error"
        self._json(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.fake._record(RecordedRequest(self.command, self.path, headers, body))

    def _authorized(self) -> bool:
        key = self.server.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided.")
        return False

    def do_GET(self) -> None:
        self._record(None)
        if not self._authorized():
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = self.server.fake.model
            self._json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(body)
        fake = self.server.fake
        try:
            if fake.delay:
                time.sleep(fake.delay)
            if not self._authorized():
                return
            failure = fake._next_failure()
            if failure is not None:
                self._error(failure.status, failure.message, failure.headers)
            elif self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}")
            elif not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
                self._error(400, "'messages' is required and must be a list")
            elif body.get("stream"):
                self._stream(body)
            else:
                self._complete(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing left to answer

    def _reply(self, body: Mapping[str, Any]) -> tuple[list[str], str]:
        fake = self.server.fake
        answer = fake.answer(body["messages"]) if callable(fake.answer) else fake.answer
        pieces = tokens(answer)
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and len(pieces) > max_tokens:
            return pieces[:max_tokens], "length"
        return pieces, "stop"

    def _complete(self, body: Mapping[str, Any]) -> None:
        pieces, finish = self._reply(body)
        self._json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model") or self.server.fake.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(pieces)},
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(body, pieces),
            },
        )

    def _stream(self, body: Mapping[str, Any]) -> None:
        pieces, finish = self._reply(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        model = body.get("model") or self.server.fake.model

        def event(delta: Mapping[str, str], finish_reason: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        self.wfile.write(b": keep-alive comment, to be ignored\n\n")
        for piece in pieces:
            if self.server.fake.token_delay:
                time.sleep(self.server.fake.token_delay)
            event({"content": piece})
        event({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            last: dict[str, Any] = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [], "usage": _usage(body, pieces),
            }  # fmt: skip
            self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class FakeOpenAIServer:
    """An OpenAI-compatible chat-completions server with a deterministic model.

    Use it as a context manager (or call :meth:`start` and :meth:`close`). The model
    answers ``answer`` (cut to the request's ``max_tokens``, counting the pieces of
    :func:`tokens`), and streams it one word at a time.

    Args:
        answer: the reply, or a function of the request's messages that returns it.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        delay: seconds to wait before answering each request (to trigger timeouts).
        token_delay: seconds between streamed pieces.
        model: the model name the server reports.

    Attributes:
        requests: every request received, in order (failed ones included).
    """

    def __init__(
        self,
        answer: Reply = DEFAULT_ANSWER,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        token_delay: float = 0.0,
        model: str = "fake-chat",
    ) -> None:
        self.answer = answer
        self.api_key = api_key
        self.delay = delay
        self.token_delay = token_delay
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        message: str | None = None,
        retry_after: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` chat requests with ``status`` and an OpenAI-style
        error body; ``retry_after`` sets the ``Retry-After`` header."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        text = message or ("Rate limit reached." if status == 429 else "The server had an error.")
        with self._lock:
            self._failures.extend(_Failure(status, text, extra) for _ in range(times))

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        if self._http is None:
            raise RuntimeError("the server is not running; call start() or use `with`")
        return int(self._http.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what an OpenAI client takes as base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Bind a free loopback port and serve on a daemon thread."""
        if self._http is None:
            self._http = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="ragkit-fake-openai",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
