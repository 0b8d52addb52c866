"""The asyncio client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ragkit.client._wire import (
    Job,
    RemoteDocument,
    RemoteKb,
    SSEParser,
    file_parts,
    idempotency_headers,
    parse_answer,
    parse_document,
    parse_event,
    parse_hit,
    parse_job,
    parse_kb,
    raise_for,
    require_httpx,
    text_documents,
)
from ragkit.types import Answer, ScoredChunk, StreamEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncClient"]


class AsyncClient:
    """The asyncio twin of :class:`Client` (the same methods, awaited).

    Example:
        >>> async with AsyncClient(url, api_key=key) as client:  # doctest: +SKIP
        ...     async for event in client.events("handbook", "When are refunds paid?"):
        ...         print(event)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        httpx_ = require_httpx()
        key = api_key or os.environ.get("RAGKIT_API_KEY", "")
        self._http: httpx.AsyncClient = httpx_.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            transport=transport,
        )

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, url, **kwargs)
        raise_for(response)
        return None if response.status_code == 204 else response.json()

    async def list_kbs(self) -> list[RemoteKb]:
        return [parse_kb(d) for d in (await self._call("GET", "/v1/kbs"))["data"]]

    async def create_kb(self, name: str) -> RemoteKb:
        return parse_kb(await self._call("POST", "/v1/kbs", json={"name": name}))

    async def delete_kb(self, name: str) -> None:
        await self._call("DELETE", f"/v1/kbs/{name}")

    async def upload(
        self,
        kb: str,
        *paths: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        data = {"metadata": json.dumps(dict(metadata))} if metadata else None
        return parse_job(
            await self._call(
                "POST",
                f"/v1/kbs/{kb}/documents",
                files=file_parts(paths),
                data=data,
                headers=idempotency_headers(idempotency_key),
            )
        )

    async def add_texts(
        self, kb: str, documents: Iterable[Any], *, idempotency_key: str | None = None
    ) -> Job:
        return parse_job(
            await self._call(
                "POST",
                f"/v1/kbs/{kb}/documents/text",
                json=text_documents(documents),
                headers=idempotency_headers(idempotency_key),
            )
        )

    async def documents(self, kb: str) -> list[RemoteDocument]:
        return [
            parse_document(d) for d in (await self._call("GET", f"/v1/kbs/{kb}/documents"))["data"]
        ]

    async def delete_document(self, kb: str, doc_id: str) -> Job:
        return parse_job(await self._call("DELETE", f"/v1/kbs/{kb}/documents/{doc_id}"))

    async def job(self, job_id: str) -> Job:
        return parse_job(await self._call("GET", f"/v1/jobs/{job_id}"))

    async def cancel(self, job: Job | str) -> Job:
        job_id = job if isinstance(job, str) else job.id
        return parse_job(await self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    async def wait(self, job: Job | str, *, timeout: float = 600.0, poll: float = 0.1) -> Job:
        import asyncio

        job_id = job if isinstance(job, str) else job.id
        deadline = time.monotonic() + timeout
        while True:
            current = await self.job(job_id)
            if current.finished:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {current.state} after {timeout} s")
            await asyncio.sleep(poll)

    async def search(
        self, kb: str, query: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> list[ScoredChunk]:
        body = {"query": query, "k": k, "filters": dict(filters) if filters else None}
        data = await self._call("POST", f"/v1/kbs/{kb}/search", json=body)
        return [parse_hit(h) for h in data["data"]]

    async def ask(
        self, kb: str, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> Answer:
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None}
        return parse_answer(await self._call("POST", f"/v1/kbs/{kb}/ask", json=body))

    async def events(
        self,
        kb: str,
        question: str,
        k: int | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        body = {
            "question": question,
            "k": k,
            "filters": dict(filters) if filters else None,
            "stream": True,
        }
        headers = {"Accept": "text/event-stream"}
        async with self._http.stream("POST", f"/v1/kbs/{kb}/ask", json=body, headers=headers) as r:
            if r.status_code >= 400:
                await r.aread()
                raise_for(r)
            parser = SSEParser()
            async for line in r.aiter_lines():
                parsed = parser.line(line)
                if parsed is not None:
                    yield parse_event(*parsed)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
