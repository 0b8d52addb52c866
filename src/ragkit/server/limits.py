"""Request limits: body size (413) and a per-key request rate (429 with Retry-After)."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from ragkit.backends.catalog import RateBuckets, take_token

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "RateLimiter"]


class RateLimiter:
    """A token bucket per API key: ``burst`` requests at once, refilled at ``per_minute``.

    With a catalog that keeps rate buckets (:class:`~ragkit.backends.catalog.RateBuckets`:
    PostgreSQL, a folder's SQLite), every worker process and machine serving it counts
    in the same bucket; otherwise (Milvus) each process counts its own, and a key may
    send up to ``workers`` times the rate.

    Example:
        >>> limiter = RateLimiter(per_minute=60, burst=2)
        >>> [limiter.acquire("k") for _ in range(3)]
        [0.0, 0.0, 1.0]

    Args:
        per_minute: requests per minute; 0 turns the limit off.
        burst: the bucket's size.
        shared: where the buckets live, shared by the workers (None: in this process).
    """

    def __init__(self, per_minute: float, burst: int, shared: RateBuckets | None = None) -> None:
        self.per_minute = per_minute
        self.burst = float(burst)
        self.shared = shared
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str) -> float:
        """Take one request for ``key``: 0.0 when allowed, else seconds to wait (whole)."""
        if self.per_minute <= 0:
            return 0.0
        if self.shared is not None:
            return self.shared.take_request(f"key:{key}", self.per_minute, self.burst)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens, wait = take_token(tokens, now - last, self.per_minute, self.burst)
            self._buckets[key] = (tokens, now)
            return wait


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, before reading them whole.

    A declared ``Content-Length`` over the limit is refused at once; a body sent without
    one (chunked) is counted as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _message(self) -> str:
        return (
            f"the request body is larger than this server's limit of {self.limit} bytes "
            f"({self.limit / 1048576:.1f} MiB); send smaller files or fewer at once"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        from starlette.exceptions import HTTPException

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI passes an HTTPException raised while reading the body on.
                    raise HTTPException(413, self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": {"code": "too_large", "message": self._message()}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any] | Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
