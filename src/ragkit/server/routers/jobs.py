"""Ingest jobs: status, cancel, and a stream of progress events.

A job belongs to the tenant whose key made it; another tenant's job id answers 404.
``GET /v1/jobs/{id}/events`` sends ``progress`` events (the job, when it changes) and
ends with one ``done`` event (the finished job), with a comment line as heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragkit.backends.catalog import JobRecord
from ragkit.server.errors import not_found
from ragkit.server.jobs import TERMINAL
from ragkit.server.routers._common import ReadKey, State, WriteKey, errors
from ragkit.server.sse import HEARTBEAT, SSE_HEADERS, encode, event_stream_doc
from ragkit.server.state import ServerState
from ragkit.server.wire import JobOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["jobs"])
_POLL = 0.2  # seconds between reads of a followed job


@router.get("/jobs/{job_id}", summary="A job's state, progress and per-file errors",
            responses=errors(404))  # fmt: skip
def get_job(job_id: str, key: ReadKey, state: State) -> JobOut:
    job = state.jobs.get(key.tenant, job_id)
    if job is None:
        raise not_found(f"job {job_id!r}")
    return JobOut.of(job)


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a job: a queued one at once, a running one between two files",
    responses=errors(404),
)
def cancel_job(job_id: str, key: WriteKey, state: State) -> JobOut:
    job = state.jobs.cancel(key.tenant, job_id)
    if job is None:
        raise not_found(f"job {job_id!r}")
    return JobOut.of(job)


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events of a job's progress, ending with 'done'",
    response_class=StreamingResponse,
    responses={
        200: {"content": event_stream_doc("progress", "done")},
        **errors(404),
    },
)
async def job_events(
    job_id: str, key: ReadKey, state: State, request: Request
) -> StreamingResponse:
    tenant = key.tenant
    first = await run_in_threadpool(_read, state, tenant, job_id)
    if first is None:
        raise not_found(f"job {job_id!r}")

    async def events() -> AsyncIterator[bytes]:
        state.metrics.stream(1)
        try:
            job: JobRecord | None = first
            event_id, sent, quiet = 0, -1.0, time.monotonic()
            while True:
                if job is None:  # deleted with its kb
                    return
                if job.state in TERMINAL:
                    event_id += 1
                    yield encode("done", JobOut.of(job).model_dump(mode="json"), event_id)
                    return
                if job.updated != sent:
                    sent, quiet = job.updated, time.monotonic()
                    event_id += 1
                    yield encode("progress", JobOut.of(job).model_dump(mode="json"), event_id)
                elif time.monotonic() - quiet >= state.settings.sse_heartbeat:
                    quiet = time.monotonic()
                    yield HEARTBEAT
                if await request.is_disconnected():
                    return
                await asyncio.sleep(_POLL)
                job = await run_in_threadpool(_read, state, tenant, job_id)
        finally:
            state.metrics.stream(-1)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def _read(state: ServerState, tenant: str, job_id: str) -> JobRecord | None:
    return state.jobs.get(tenant, job_id)
