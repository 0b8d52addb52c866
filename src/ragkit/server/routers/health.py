"""``/healthz`` (the process answers), ``/readyz`` (its catalog answers), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ragkit.server.auth import get_state
from ragkit.server.errors import error_body

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The server can answer: its catalog is reachable",
    responses={503: {"description": "the catalog does not answer"}},
)
def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    try:
        state.catalog.find_key("000000000000")
    except Exception:
        body = error_body("not_ready", f"the catalog at {state.catalog.location} does not answer")
        return JSONResponse(body, 503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        get_state(request).metrics.render(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
