"""``search`` and ``ask`` over one kb of the key's tenant.

``ask`` answers JSON, or server-sent events when the request says ``stream: true`` or
``Accept: text/event-stream``. Events carry increasing ``id:`` numbers: ``sources``
(once, the passages retrieved), then ``delta`` (verified answer text: the deltas joined
are the final text) and ``citation`` (a marker's source, the first time the text uses
it), then exactly one ``done`` (the whole answer, as the JSON response has it) or one
``error``. Comment lines are heartbeats. A client that disconnects stops the generation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragkit.errors import RagkitError
from ragkit.server.errors import status_of
from ragkit.server.routers._common import ReadKey, State, errors
from ragkit.server.sse import HEARTBEAT, SSE_HEADERS, encode, event_stream_doc, from_thread
from ragkit.server.wire import (
    AnswerOut,
    AskRequest,
    CitationOut,
    DeltaOut,
    ErrorDetail,
    ScoredChunkOut,
    SearchRequest,
    SearchResponse,
    SourcesOut,
)
from ragkit.types import CitationEvent, DeltaEvent, DoneEvent, SourcesEvent, StreamEvent

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["query"])

_SSE_DOC = (
    "With stream=true or Accept: text/event-stream: events sources (SourcesOut, once), "
    "delta (DeltaOut), citation (CitationOut), then done (AnswerOut) or error (ErrorDetail)."
)


@router.post(
    "/kbs/{kb}/search",
    summary="The chunks most relevant to a query, with their exact locations",
    responses=errors(400, 404),
)
def search(kb: str, body: SearchRequest, key: ReadKey, state: State) -> SearchResponse:
    rag = state.kbs.rag(key.tenant, kb)
    hits = rag.retrieve(body.query, body.k or state.settings.default_k, body.filters)
    return SearchResponse(data=[ScoredChunkOut.of(h) for h in hits])


@router.post(
    "/kbs/{kb}/ask",
    summary="Answer a question with citations (JSON, or server-sent events)",
    description=_SSE_DOC,
    response_model=AnswerOut,
    responses={
        200: {"content": event_stream_doc("sources", "delta", "citation", "done", "error")},
        **errors(400, 404),
    },
)
async def ask(kb: str, body: AskRequest, key: ReadKey, state: State, request: Request) -> Any:
    rag = await run_in_threadpool(state.kbs.rag, key.tenant, kb)
    k = body.k or state.settings.default_k
    if not (body.stream or "text/event-stream" in request.headers.get("accept", "")):
        answer = await run_in_threadpool(rag.ask, body.question, k, body.filters)
        return AnswerOut.of(answer)

    def events() -> Any:
        return rag.events(body.question, k, body.filters)

    async def stream() -> AsyncIterator[bytes]:
        event_id = 0
        state.metrics.stream(1)
        try:
            items = from_thread(events, request, state.settings.sse_heartbeat)
            try:
                async for item in items:
                    if item is None:
                        yield HEARTBEAT
                        continue
                    event_id += 1
                    yield _event(item, event_id)
            finally:
                await items.aclose()  # closes the generation now, not when collected
        except RagkitError as exc:
            _, code = status_of(exc)
            yield encode(
                "error", ErrorDetail(code=code, message=str(exc)).model_dump(), event_id + 1
            )
        except Exception:
            logger.exception("streaming an answer from %s failed", kb)
            detail = ErrorDetail(code="internal_error", message="the answer failed; see the log")
            yield encode("error", detail.model_dump(), event_id + 1)
        finally:
            state.metrics.stream(-1)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _event(item: StreamEvent, event_id: int) -> bytes:
    if isinstance(item, SourcesEvent):
        data: Any = SourcesOut(hits=[ScoredChunkOut.of(h) for h in item.hits])
        name = "sources"
    elif isinstance(item, DeltaEvent):
        data, name = DeltaOut(text=item.text), "delta"
    elif isinstance(item, CitationEvent):
        data, name = CitationOut.of(item.citation), "citation"
    elif isinstance(item, DoneEvent):
        data, name = AnswerOut.of(item.answer), "done"
    else:  # pragma: no cover - the event types are closed
        raise TypeError(f"unknown stream event {item!r}")
    return encode(name, data.model_dump(mode="json"), event_id)
