"""The HTTP side of :class:`~ragkit.generation.OpenAIGenerator`: sending with retries and
backoff, reading server errors, and the server-sent events of a streamed answer."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ragkit._deps import require
from ragkit.errors import GenerationError
from ragkit.types import Usage

if TYPE_CHECKING:
    import httpx

__all__ = ["Retry", "chat_content", "httpx_module", "send", "stream_deltas", "usage_in"]

logger = logging.getLogger(__name__)

# 408 request timeout, 409 lock conflict, 429 rate limit, and 5xx are worth another try.
_RETRY_STATUS = frozenset({408, 409, 429})


def httpx_module() -> Any:
    """``httpx``, or an error naming the extra to install."""
    return require("httpx", extra="openai", purpose="OpenAIGenerator")


def _retryable(status: int) -> bool:
    return status in _RETRY_STATUS or status >= 500


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, ``Retry-After`` (seconds or
    an HTTP date), or None."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


def _server_message(body: bytes) -> str:
    """The error message in a response body: OpenAI's ``{"error": {"message"}}``, the
    ``{"detail"}`` of FastAPI-based servers, or the start of the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        for key in ("error", "message", "detail"):
            if data.get(key):
                return str(data[key])
    return json.dumps(data)[:500]


def _sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive ping
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how long to wait before sending a failed request again.

    Attributes:
        max_retries: further attempts after a failed one.
        backoff: first delay in seconds; doubles each attempt, up to ``max_backoff``.
        max_backoff: longest computed delay.
        max_retry_after: longest wait honoured from a ``Retry-After`` header.
    """

    max_retries: int
    backoff: float
    max_backoff: float
    max_retry_after: float

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^attempt."""
        delay: float = min(self.max_backoff, self.backoff * 2**attempt)
        return delay * random.uniform(0.5, 1.0)


def send(
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    stream: bool,
    timeout: float,
    retry: Retry,
) -> httpx.Response:
    """POST ``body``; retry what is worth retrying; return a successful response."""
    httpx = httpx_module()
    attempts = retry.max_retries + 1
    for attempt in range(attempts):
        wait: float | None = None
        try:
            request = client.build_request("POST", url, json=body, headers=headers)
            response = client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            error = GenerationError(
                f"{url}: no answer within the {timeout:g} s timeout "
                f"({type(exc).__name__}); raise timeout= for slow models"
            )
            cause: BaseException = exc
        except httpx.TransportError as exc:
            error = GenerationError(f"{url}: connection failed: {exc or type(exc)}")
            cause = exc
        else:
            if response.status_code < 400:
                return response
            try:
                message = _server_message(response.read())
            finally:
                response.close()
            error = GenerationError(f"{url} answered {response.status_code}: {message}")
            cause = error
            if not _retryable(response.status_code):
                raise error
            wait = _retry_after(response.headers)
            if wait is not None:
                wait = min(wait, retry.max_retry_after)
        if attempt + 1 == attempts:
            if attempts > 1:
                error = GenerationError(f"{error} (gave up after {attempts} attempts)")
            raise error from (None if cause is error else cause)
        delay = retry.delay(attempt) if wait is None else wait
        logger.info(
            "%s; retrying in %.2f s (attempt %d of %d)", error, delay, attempt + 2, attempts
        )
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def usage_in(data: Any) -> Usage | None:
    """The token counts a response body or stream chunk carries, if any."""
    return Usage.from_wire(data.get("usage")) if isinstance(data, Mapping) else None


def _report_usage(data: Any, on_usage: Callable[[Usage], None] | None) -> None:
    usage = usage_in(data)
    if usage is not None and on_usage is not None:
        on_usage(usage)


def chat_content(data: Any, url: str) -> str:
    """The answer text of a chat-completions response body."""
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise GenerationError(f"{url} sent no chat completion: {json.dumps(data)[:300]}") from exc
    return str(content or "")


def stream_deltas(
    response: httpx.Response,
    url: str,
    timeout: float,
    on_usage: Callable[[Usage], None] | None = None,
) -> Iterator[str]:
    """The text deltas of a streamed answer (closes ``response``); ``on_usage`` gets the
    token counts of a chunk that carries them."""
    httpx = httpx_module()
    try:
        if response.headers.get("content-type", "").startswith("application/json"):
            # A server that ignores "stream" answers in one piece.
            data = json.loads(response.read())
            _report_usage(data, on_usage)
            yield chat_content(data, url)
            return
        for data in _sse_data(response.iter_lines()):
            if data.strip() == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise GenerationError(
                    f"{url} sent a malformed stream event: {data[:200]!r}"
                ) from exc
            if isinstance(chunk, Mapping) and chunk.get("error"):
                raise GenerationError(f"{url} failed mid-stream: {_server_message(data.encode())}")
            _report_usage(chunk, on_usage)
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
    except httpx.TimeoutException as exc:
        raise GenerationError(f"{url}: the stream stalled for more than {timeout:g} s") from exc
    except httpx.TransportError as exc:
        raise GenerationError(f"{url}: the stream broke off: {exc}") from exc
    finally:
        response.close()
