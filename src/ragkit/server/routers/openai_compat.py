"""OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``: a model is a kb.

Point an OpenAI SDK or a chat UI at ``http://host:port/v1`` with a ragkit key as its API
key. ``GET /v1/models`` lists the kbs of the key's tenant; ``model`` names the kb to
answer from (another tenant's kb is "not found", the same as a missing one). The last
user message of ``messages`` is the question. Answers carry their citations as
``url_citation`` annotations (``content[start_index:end_index]`` is the marker ``[n]``)
with a ``ragkit`` object (source, page, exact span, quote), and the numbered
``sources``. Streamed (``stream: true``): ``chat.completion.chunk`` deltas of verified
text, then one last chunk with ``finish_reason: "stop"``, the annotations and the
sources (never repeated per chunk), then ``data: [DONE]``.

Errors answer OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``; a
parameter of the wrong type is a 400, as OpenAI answers it; parameters ragkit does not
use are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ragkit.errors import ConfigurationError, RagkitError
from ragkit.server.errors import ApiError, status_of
from ragkit.server.openai_wire import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    ModelList,
    ModelOut,
    OpenAIErrorBody,
    annotations_of,
    sources_of,
)
from ragkit.server.routers._common import ReadKey, State
from ragkit.server.sse import HEARTBEAT, SSE_HEADERS, event_stream_doc, from_thread
from ragkit.server.state import ServerState
from ragkit.server.wire import UsageOut
from ragkit.types import Answer, DeltaEvent, DoneEvent

__all__ = ["router"]

logger = logging.getLogger(__name__)

#: The longest question taken (as for /v1/kbs/{kb}/ask).
MAX_QUESTION = 10_000

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}
_PARAMS = {"model_not_found": "model"}


def _openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


class _OpenAIRoute(APIRoute):
    """Answers this router's errors in OpenAI's shape (400 for invalid parameters)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                # Where and why only, never the rejected value (it may be a secret).
                first = exc.errors()[0] if exc.errors() else {}
                loc = [str(p) for p in first.get("loc", ()) if p != "body"]
                where = ".".join(loc)
                message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid body"
                return _openai_error(400, message, code="invalid_request", param=where or None)
            except ApiError as exc:
                return _openai_error(
                    exc.status,
                    exc.message,
                    code=_CODES.get(exc.code, exc.code),
                    param=_PARAMS.get(exc.code),
                    headers=exc.headers,
                )
            except RagkitError as exc:
                status, code = status_of(exc)
                if status >= 500:
                    logger.error("%s %s failed: %s", request.method, request.url.path, exc)
                return _openai_error(status, str(exc), code=code)

        return route


router = APIRouter(prefix="/v1", tags=["openai"], route_class=_OpenAIRoute)

_DESCRIPTIONS = {
    400: "a parameter is invalid (OpenAI's error shape)",
    401: "no API key, or not a valid one",
    403: "the API key lacks the read scope",
    404: "no such model (kb) for this key's tenant",
    422: "never sent: invalid parameters answer 400",
    429: "too many requests for this key: see Retry-After",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    every = sorted({400, 401, 403, 429, *statuses})
    return {s: {"model": OpenAIErrorBody, "description": _DESCRIPTIONS[s]} for s in every}


def _model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "model_not_found",
        f"The model {name!r} does not exist or you do not have access to it.",
    )


def _info_of(state: ServerState, tenant: str, name: str) -> Any:
    try:
        info = state.catalog.get_kb(tenant, name)
    except ConfigurationError:  # not even a valid kb name
        info = None
    if info is None:
        raise _model_not_found(name)
    return info


@router.get("/models", summary="The models: the kbs of the key's tenant", responses=_errors())
def list_models(key: ReadKey, state: State) -> ModelList:
    return ModelList(
        data=[
            ModelOut(id=info.name, created=int(info.created), owned_by=info.tenant)
            for info in state.catalog.list_kbs(key.tenant)
        ]
    )


@router.get("/models/{model}", summary="One model (a kb)", responses=_errors(404))
def get_model(model: str, key: ReadKey, state: State) -> ModelOut:
    info = _info_of(state, key.tenant, model)
    return ModelOut(id=info.name, created=int(info.created), owned_by=info.tenant)


def _question(body: ChatCompletionRequest) -> str:
    users = [m for m in body.messages if m.role == "user"]
    if not users:
        raise ApiError(400, "invalid_request", "messages must include a user message")
    question = users[-1].text.strip()
    if not question:
        raise ApiError(400, "invalid_request", "the last user message has no text")
    if len(question) > MAX_QUESTION:
        raise ApiError(
            400,
            "invalid_request",
            f"the last user message is longer than {MAX_QUESTION} characters",
        )
    return question


def _history(body: ChatCompletionRequest) -> list[dict[str, str]] | None:
    """The conversation before the last user message (user and assistant turns with
    text): what ``RAG`` condenses a follow-up question with."""
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")
    turns = [
        {"role": m.role, "content": m.text}
        for m in body.messages[:last]
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    return turns or None


def _completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


@router.post(
    "/chat/completions",
    summary="Answer the last user message from the kb named by model (OpenAI-compatible)",
    description=(
        "With stream=true: server-sent `data:` lines of chat.completion.chunk objects; "
        "the last chunk has finish_reason stop, the annotations and the sources; then "
        "`data: [DONE]`."
    ),
    response_model=ChatCompletion,
    responses={
        200: {"content": event_stream_doc(ids=False)},
        **_errors(404, 422),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, key: ReadKey, state: State, request: Request
) -> Any:
    question = _question(body)
    history = _history(body)
    if body.n not in (None, 1):
        raise ApiError(400, "invalid_request", "n: only one choice (n=1) is supported")

    def open_rag() -> Any:
        info = _info_of(state, key.tenant, body.model)
        return state.kbs.rag(info.tenant, info.name)

    rag = await run_in_threadpool(open_rag)
    kb, k = body.model, state.settings.default_k
    base = str(request.base_url)
    completion_id, created = _completion_id(), int(time.time())
    if not body.stream:
        answer: Answer = await run_in_threadpool(lambda: rag.ask(question, k, history=history))
        return ChatCompletion(
            id=completion_id,
            created=created,
            model=kb,
            choices=[
                ChatChoice(
                    message=ChatMessageOut(
                        content=answer.text, annotations=annotations_of(answer, kb, base)
                    )
                )
            ],
            sources=sources_of(answer.citations, kb, base),
            usage=UsageOut.of(answer.usage),
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": kb,
            "choices": choices,
            **({"usage": None} if include_usage else {}),
            **extra,
        }
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return event([choice], **extra)

    async def stream() -> AsyncIterator[bytes]:
        state.metrics.stream(1)
        try:
            yield chunk({"role": "assistant", "content": ""})
            items = from_thread(
                lambda: rag.events(question, k, history=history),
                request,
                state.settings.sse_heartbeat,
            )
            try:
                async for item in items:
                    if item is None:
                        yield HEARTBEAT
                    elif isinstance(item, DeltaEvent) and item.text:
                        yield chunk({"content": item.text})
                    elif isinstance(item, DoneEvent):
                        notes = [a.model_dump(mode="json") for a in annotations_of(
                            item.answer, kb, base)]  # fmt: skip
                        sources = sources_of(item.answer.citations, kb, base)
                        yield chunk(
                            {"annotations": notes},
                            "stop",
                            sources=[s.model_dump(mode="json") for s in sources],
                        )
                        if include_usage:
                            usage = UsageOut.of(item.answer.usage)
                            yield event([], usage=usage and usage.model_dump(mode="json"))
            finally:
                await items.aclose()  # closes the generation now, not when collected
            yield b"data: [DONE]\n\n"
        except RagkitError as exc:
            status, code = status_of(exc)
            yield _stream_error(str(exc), code, status)
        except Exception:
            logger.exception("streaming a chat completion from %s failed", kb)
            yield _stream_error("the answer failed; see the server log", "internal_error", 500)
        finally:
            state.metrics.stream(-1)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _stream_error(message: str, code: str, status: int) -> bytes:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    data = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"
