"""The blocking client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from ragkit.types import Answer, ScoredChunk, StreamEvent, text_then_answer

if TYPE_CHECKING:
    import httpx

__all__ = ["Client"]


class Client:
    """A blocking client of one ragkit server (see the module docstring).

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000``.
        api_key: ``rk_...``; default ``RAGKIT_API_KEY`` from the environment.
        timeout: seconds per request (streams wait between events as long).
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        httpx_ = require_httpx()
        key = api_key or os.environ.get("RAGKIT_API_KEY", "")
        self._http: httpx.Client = httpx_.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            transport=transport,
        )

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        raise_for(response)
        return None if response.status_code == 204 else response.json()

    # kbs
    def list_kbs(self) -> list[RemoteKb]:
        return [parse_kb(d) for d in self._call("GET", "/v1/kbs")["data"]]

    def create_kb(self, name: str) -> RemoteKb:
        return parse_kb(self._call("POST", "/v1/kbs", json={"name": name}))

    def get_kb(self, name: str) -> RemoteKb:
        return parse_kb(self._call("GET", f"/v1/kbs/{name}"))

    def delete_kb(self, name: str) -> None:
        self._call("DELETE", f"/v1/kbs/{name}")

    # documents
    def upload(
        self,
        kb: str,
        *paths: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Upload files (each named by its file name); returns the job indexing them."""
        data = {"metadata": json.dumps(dict(metadata))} if metadata else None
        return parse_job(
            self._call(
                "POST",
                f"/v1/kbs/{kb}/documents",
                files=file_parts(paths),
                data=data,
                headers=idempotency_headers(idempotency_key),
            )
        )

    def add_texts(
        self, kb: str, documents: Iterable[Any], *, idempotency_key: str | None = None
    ) -> Job:
        """Index texts: ``Document`` objects or ``{"text", "source", "metadata"}`` dicts."""
        return parse_job(
            self._call(
                "POST",
                f"/v1/kbs/{kb}/documents/text",
                json=text_documents(documents),
                headers=idempotency_headers(idempotency_key),
            )
        )

    def documents(self, kb: str) -> list[RemoteDocument]:
        return [parse_document(d) for d in self._call("GET", f"/v1/kbs/{kb}/documents")["data"]]

    def get_document(self, kb: str, doc_id: str, *, chunks: bool = False) -> RemoteDocument:
        url = f"/v1/kbs/{kb}/documents/{doc_id}"
        return parse_document(self._call("GET", url, params={"chunks": str(chunks).lower()}))

    def replace_document(self, kb: str, doc_id: str, path: str | os.PathLike[str]) -> Job:
        file = file_parts([path])[0][1]
        return parse_job(
            self._call("PUT", f"/v1/kbs/{kb}/documents/{doc_id}", files={"file": file})
        )

    def delete_document(self, kb: str, doc_id: str) -> Job:
        return parse_job(self._call("DELETE", f"/v1/kbs/{kb}/documents/{doc_id}"))

    def sync(
        self, kb: str, path: str, *, include: Sequence[str] = ("**/*",), exclude: Sequence[str] = ()
    ) -> Job:
        body = {"path": path, "include": list(include), "exclude": list(exclude)}
        return parse_job(self._call("POST", f"/v1/kbs/{kb}/sync", json=body))

    # jobs
    def job(self, job_id: str) -> Job:
        return parse_job(self._call("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job: Job | str) -> Job:
        job_id = job if isinstance(job, str) else job.id
        return parse_job(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    def wait(self, job: Job | str, *, timeout: float = 600.0, poll: float = 0.1) -> Job:
        """Poll the job until it finishes; TimeoutError after ``timeout`` seconds."""
        job_id = job if isinstance(job, str) else job.id
        deadline = time.monotonic() + timeout
        while True:
            current = self.job(job_id)
            if current.finished:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {current.state} after {timeout} s")
            time.sleep(poll)

    # query
    def search(
        self, kb: str, query: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> list[ScoredChunk]:
        body = {"query": query, "k": k, "filters": dict(filters) if filters else None}
        return [parse_hit(h) for h in self._call("POST", f"/v1/kbs/{kb}/search", json=body)["data"]]

    def ask(
        self, kb: str, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> Answer:
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None}
        return parse_answer(self._call("POST", f"/v1/kbs/{kb}/ask", json=body))

    def events(
        self, kb: str, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> Iterator[StreamEvent]:
        """The answer as :class:`~ragkit.types.StreamEvent` objects, like ``RAG.events``."""
        body = {
            "question": question,
            "k": k,
            "filters": dict(filters) if filters else None,
            "stream": True,
        }
        headers = {"Accept": "text/event-stream"}
        with self._http.stream("POST", f"/v1/kbs/{kb}/ask", json=body, headers=headers) as r:
            if r.status_code >= 400:
                r.read()
                raise_for(r)
            parser = SSEParser()
            for line in r.iter_lines():
                parsed = parser.line(line)
                if parsed is not None:
                    yield parse_event(*parsed)

    def stream(
        self, kb: str, question: str, k: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> Iterator[str | Answer]:
        """The verified text as it comes, then the :class:`Answer`, like ``RAG.stream``."""
        yield from text_then_answer(self.events(kb, question, k, filters))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
