"""Server-sent events: a blocking iterator run in a thread, sent as named events.

:func:`from_thread` runs each ``next()`` of a blocking iterator (``RAG.events``, a job's
progress) in a worker thread and yields its items to the event loop, with ``None``
(a heartbeat) whenever ``heartbeat`` seconds pass without one. When the client goes
away (:meth:`Request.is_disconnected` between items, or the response task being
cancelled) the iterator is closed as soon as its current step returns, so generation
stops: ``GeneratorExit`` reaches the language model's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from fastapi import Request

__all__ = ["HEARTBEAT", "SSE_HEADERS", "encode", "event_stream_doc", "from_thread"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: A comment line: ignored by clients, keeps proxies from closing an idle stream.
HEARTBEAT = b": keep-alive\n\n"
#: Response headers of every event stream (no proxy buffering, no caching).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_END = object()


def event_stream_doc(*names: str, ids: bool = True) -> dict[str, Any]:
    """The OpenAPI ``content`` of a ``text/event-stream`` response. In OpenAPI 3.1 (as
    ``itemSchema`` says it in 3.2) the schema describes one event, an object with the
    fields ``event``, ``data`` (JSON text), ``id``; ``names`` are the events sent (none:
    ``data``-only events, as OpenAI's streams send)."""
    properties: dict[str, Any] = {
        "data": {"type": "string", "description": "JSON, one line"},
    }
    required = ["data"]
    if names:
        properties["event"] = {"type": "string", "enum": list(names)}
        required.append("event")
    if ids:
        properties["id"] = {"type": "string", "pattern": "^[0-9]+$"}
    event = {"type": "object", "properties": properties, "required": required}
    return {"text/event-stream": {"schema": event}}


def encode(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One event: ``id:``, ``event:`` and a one-line JSON ``data:`` field."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def from_thread(
    make: Callable[[], Iterator[T]], request: Request, heartbeat: float
) -> AsyncGenerator[T | None, None]:
    """The items of ``make()`` (called in a thread), ``None`` for each heartbeat; stops
    and closes the iterator when the client disconnects."""
    loop = asyncio.get_running_loop()
    iterator: Iterator[T] | None = None

    def step() -> Any:
        nonlocal iterator
        if iterator is None:
            iterator = make()
        return next(iterator, _END)

    def close_later(_: object = None) -> None:
        try:
            loop.run_in_executor(None, close)
        except RuntimeError:  # the loop is shutting down: close here
            close()

    def close() -> None:
        close_it = getattr(iterator, "close", None)
        if close_it is not None:
            try:
                close_it()
            except Exception:  # closing after a disconnect: nothing left to tell
                logger.exception("closing an event stream's iterator failed")

    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            pending = loop.run_in_executor(None, step)
            while True:
                done, _ = await asyncio.wait({pending}, timeout=heartbeat)
                if done:
                    break
                if await request.is_disconnected():
                    return
                yield None
            item, pending = pending.result(), None
            if item is _END:
                return
            yield item
            if await request.is_disconnected():
                logger.debug("client left %s; stopping its stream", request.url.path)
                return
    finally:
        # The iterator cannot be closed while a step runs in its thread: close it
        # after that step, without waiting here (a cancelled task must not await).
        if pending is not None and not pending.done():
            pending.add_done_callback(close_later)
        else:
            close_later()
