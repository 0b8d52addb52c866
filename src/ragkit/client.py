"""A client for a ragkit server, so a remote kb feels like ``RAG`` (``ragkit[server]``).

``search`` returns :class:`~ragkit.types.ScoredChunk` objects, ``ask`` an
:class:`~ragkit.types.Answer`, ``events`` the same stream events as
:meth:`ragkit.RAG.events` (read from the server's server-sent events), ``stream`` the
text pieces and then the Answer, as :meth:`ragkit.RAG.stream`. Errors are
:class:`~ragkit.errors.RemoteError` subclasses carrying the server's message.

Example:
    >>> from ragkit.client import Client
    >>> with Client("http://127.0.0.1:8000", api_key="rk_...") as client:  # doctest: +SKIP
    ...     job = client.wait(client.upload("handbook", "handbook.pdf"))
    ...     print(client.ask("handbook", "When are refunds paid?"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    RemoteError,
)
from ragkit.types import (
    Answer,
    Chunk,
    Citation,
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    FileIssue,
    ScoredChunk,
    SourcesEvent,
    StreamEvent,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncClient", "Client", "Job", "RemoteDocument", "RemoteKb"]

_TERMINAL = ("succeeded", "failed", "partial", "canceled")


@dataclass(frozen=True, slots=True)
class RemoteKb:
    """A knowledge base on the server."""

    name: str
    tenant: str
    created: float
    documents: int | None = None
    chunks: int | None = None


@dataclass(frozen=True, slots=True)
class RemoteDocument:
    """A document of a remote kb (``chunks`` only when asked for)."""

    id: str
    source: str
    content_hash: str
    state: str
    chunk_count: int
    chunks: tuple[Chunk, ...] | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """An ingest job. ``finished`` once its state is final.

    Attributes:
        errors: per-file failures.
        report: the server's IndexReport as a dict (added, updated, unchanged, ...).
    """

    id: str
    kb: str
    kind: str
    state: str
    created: float
    updated: float
    done: int = 0
    total: int | None = None
    errors: tuple[FileIssue, ...] = ()
    report: Mapping[str, Any] | None = None
    message: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in _TERMINAL


# -- JSON -> domain types --------------------------------------------------------------


def _chunk(d: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=d["id"], text=d["text"], document_id=d["document_id"], source=d["source"],
        start=d["start"], end=d["end"], page=d.get("page"), page_end=d.get("page_end"),
        page_label=d.get("page_label"), page_label_end=d.get("page_label_end"),
        metadata=d.get("metadata") or {},
    )  # fmt: skip


def _hit(d: Mapping[str, Any]) -> ScoredChunk:
    return ScoredChunk(_chunk(d["chunk"]), float(d["score"]))


def _citation(d: Mapping[str, Any]) -> Citation:
    return Citation(
        marker=d["marker"], chunk_id=d["chunk_id"], source=d["source"], start=d["start"],
        end=d["end"], quote=d["quote"], page=d.get("page"), page_end=d.get("page_end"),
        page_label=d.get("page_label"), page_label_end=d.get("page_label_end"),
        metadata=d.get("metadata") or {},
    )  # fmt: skip


def _answer(d: Mapping[str, Any]) -> Answer:
    return Answer(
        question=d["question"],
        text=d["text"],
        citations=tuple(_citation(c) for c in d.get("citations", ())),
        contexts=tuple(_hit(h) for h in d.get("contexts", ())),
        dropped=tuple(_hit(h) for h in d.get("dropped", ())),
        invalid_markers=tuple(d.get("invalid_markers", ())),
        model=d.get("model", ""),
        extractive=bool(d.get("extractive")),
        refused=bool(d.get("refused")),
        unsupported=tuple(d.get("unsupported", ())),
        related=tuple(_hit(h) for h in d.get("related", ())),
    )


def _job(d: Mapping[str, Any]) -> Job:
    return Job(
        id=d["id"], kb=d["kb"], kind=d["kind"], state=d["state"], created=d["created"],
        updated=d["updated"], done=d.get("done", 0), total=d.get("total"),
        errors=tuple(FileIssue(e["source"], e["reason"]) for e in d.get("errors", ())),
        report=d.get("report"), message=d.get("message"), raw=d,
    )  # fmt: skip


def _kb(d: Mapping[str, Any]) -> RemoteKb:
    return RemoteKb(d["name"], d["tenant"], d["created"], d.get("documents"), d.get("chunks"))


def _document(d: Mapping[str, Any]) -> RemoteDocument:
    chunks = d.get("chunks")
    return RemoteDocument(
        d["id"], d["source"], d["content_hash"], d["state"], d["chunk_count"],
        None if chunks is None else tuple(_chunk(c) for c in chunks),
    )  # fmt: skip


def _event(name: str, data: Mapping[str, Any]) -> StreamEvent:
    if name == "sources":
        return SourcesEvent(tuple(_hit(h) for h in data["hits"]))
    if name == "delta":
        return DeltaEvent(data["text"])
    if name == "citation":
        return CitationEvent(_citation(data))
    if name == "done":
        return DoneEvent(_answer(data))
    if name == "error":
        raise RemoteError(data.get("message", "the answer failed"), 200, data.get("code", ""))
    raise RemoteError(f"unknown event {name!r} from the server", 200)


class _SSE:
    """Server-sent events parser: feed lines, get (event, data) pairs."""

    def __init__(self) -> None:
        self.name = "message"
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str, Any] | None:
        if not line:
            if not self.data:
                return None
            out = (self.name, json.loads("\n".join(self.data)))
            self.name, self.data = "message", []
            return out
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self.name = value
        elif key == "data":
            self.data.append(value)
        return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error.get("code", ""))
    except Exception:
        message, code = f"the server answered {response.status_code}", ""
    status = response.status_code
    if status in (401, 403):
        raise AuthenticationError(message, status, code)
    if status == 404:
        raise NotFoundError(message, status, code)
    if status == 429:
        retry = float(response.headers.get("Retry-After", "1") or 1)
        raise RateLimitError(message, status, code, retry_after=retry)
    raise RemoteError(message, status, code)


def _files(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, tuple[str, bytes]]]:
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise ConfigurationError(f"{path} is not a file")
        out.append(("files", (path.name, path.read_bytes())))
    return out


def _texts(documents: Iterable[Any]) -> dict[str, Any]:
    items = []
    for d in documents:
        if isinstance(d, Mapping):
            items.append({"text": d["text"], "source": d["source"],
                          "metadata": dict(d.get("metadata") or {})})  # fmt: skip
        else:  # a ragkit Document
            items.append({"text": d.text, "source": d.source, "metadata": dict(d.metadata)})
    return {"documents": items}


def _headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _require_httpx() -> Any:
    from ragkit._deps import require

    return require("httpx", extra="server", purpose="ragkit.client")


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
        httpx_ = _require_httpx()
        key = api_key or os.environ.get("RAGKIT_API_KEY", "")
        self._http: httpx.Client = httpx_.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            transport=transport,
        )

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        _raise_for(response)
        return None if response.status_code == 204 else response.json()

    # kbs
    def list_kbs(self) -> list[RemoteKb]:
        return [_kb(d) for d in self._call("GET", "/v1/kbs")["data"]]

    def create_kb(self, name: str) -> RemoteKb:
        return _kb(self._call("POST", "/v1/kbs", json={"name": name}))

    def get_kb(self, name: str) -> RemoteKb:
        return _kb(self._call("GET", f"/v1/kbs/{name}"))

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
        return _job(self._call("POST", f"/v1/kbs/{kb}/documents", files=_files(paths),
                               data=data, headers=_headers(idempotency_key)))  # fmt: skip

    def add_texts(
        self, kb: str, documents: Iterable[Any], *, idempotency_key: str | None = None
    ) -> Job:
        """Index texts: ``Document`` objects or ``{"text", "source", "metadata"}`` dicts."""
        return _job(self._call("POST", f"/v1/kbs/{kb}/documents/text", json=_texts(documents),
                               headers=_headers(idempotency_key)))  # fmt: skip

    def documents(self, kb: str) -> list[RemoteDocument]:
        return [_document(d) for d in self._call("GET", f"/v1/kbs/{kb}/documents")["data"]]

    def get_document(self, kb: str, doc_id: str, *, chunks: bool = False) -> RemoteDocument:
        url = f"/v1/kbs/{kb}/documents/{doc_id}"
        return _document(self._call("GET", url, params={"chunks": str(chunks).lower()}))

    def replace_document(self, kb: str, doc_id: str, path: str | os.PathLike[str]) -> Job:
        file = _files([path])[0][1]
        return _job(self._call("PUT", f"/v1/kbs/{kb}/documents/{doc_id}", files={"file": file}))

    def delete_document(self, kb: str, doc_id: str) -> Job:
        return _job(self._call("DELETE", f"/v1/kbs/{kb}/documents/{doc_id}"))

    def sync(self, kb: str, path: str, *, include: Sequence[str] = ("**/*",),
             exclude: Sequence[str] = ()) -> Job:  # fmt: skip
        body = {"path": path, "include": list(include), "exclude": list(exclude)}
        return _job(self._call("POST", f"/v1/kbs/{kb}/sync", json=body))

    # jobs
    def job(self, job_id: str) -> Job:
        return _job(self._call("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job: Job | str) -> Job:
        job_id = job if isinstance(job, str) else job.id
        return _job(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

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
    def search(self, kb: str, query: str, k: int | None = None,
               filters: Mapping[str, Any] | None = None) -> list[ScoredChunk]:  # fmt: skip
        body = {"query": query, "k": k, "filters": dict(filters) if filters else None}
        return [_hit(h) for h in self._call("POST", f"/v1/kbs/{kb}/search", json=body)["data"]]

    def ask(self, kb: str, question: str, k: int | None = None,
            filters: Mapping[str, Any] | None = None) -> Answer:  # fmt: skip
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None}
        return _answer(self._call("POST", f"/v1/kbs/{kb}/ask", json=body))

    def events(self, kb: str, question: str, k: int | None = None,
               filters: Mapping[str, Any] | None = None) -> Iterator[StreamEvent]:  # fmt: skip
        """The answer as :class:`~ragkit.types.StreamEvent` objects, like ``RAG.events``."""
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None,
                "stream": True}  # fmt: skip
        headers = {"Accept": "text/event-stream"}
        with self._http.stream("POST", f"/v1/kbs/{kb}/ask", json=body, headers=headers) as r:
            if r.status_code >= 400:
                r.read()
                _raise_for(r)
            parser = _SSE()
            for line in r.iter_lines():
                parsed = parser.line(line)
                if parsed is not None:
                    yield _event(*parsed)

    def stream(self, kb: str, question: str, k: int | None = None,
               filters: Mapping[str, Any] | None = None) -> Iterator[str | Answer]:  # fmt: skip
        """The verified text as it comes, then the :class:`Answer`, like ``RAG.stream``."""
        for event in self.events(kb, question, k, filters):
            if isinstance(event, DeltaEvent):
                yield event.text
            elif isinstance(event, DoneEvent):
                yield event.answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        httpx_ = _require_httpx()
        key = api_key or os.environ.get("RAGKIT_API_KEY", "")
        self._http: httpx.AsyncClient = httpx_.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            transport=transport,
        )

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, url, **kwargs)
        _raise_for(response)
        return None if response.status_code == 204 else response.json()

    async def list_kbs(self) -> list[RemoteKb]:
        return [_kb(d) for d in (await self._call("GET", "/v1/kbs"))["data"]]

    async def create_kb(self, name: str) -> RemoteKb:
        return _kb(await self._call("POST", "/v1/kbs", json={"name": name}))

    async def delete_kb(self, name: str) -> None:
        await self._call("DELETE", f"/v1/kbs/{name}")

    async def upload(self, kb: str, *paths: str | os.PathLike[str],
                     metadata: Mapping[str, Any] | None = None,
                     idempotency_key: str | None = None) -> Job:  # fmt: skip
        data = {"metadata": json.dumps(dict(metadata))} if metadata else None
        return _job(await self._call("POST", f"/v1/kbs/{kb}/documents", files=_files(paths),
                                     data=data, headers=_headers(idempotency_key)))  # fmt: skip

    async def add_texts(self, kb: str, documents: Iterable[Any], *,
                        idempotency_key: str | None = None) -> Job:  # fmt: skip
        return _job(await self._call("POST", f"/v1/kbs/{kb}/documents/text",
                                     json=_texts(documents),
                                     headers=_headers(idempotency_key)))  # fmt: skip

    async def documents(self, kb: str) -> list[RemoteDocument]:
        return [_document(d) for d in (await self._call("GET", f"/v1/kbs/{kb}/documents"))["data"]]

    async def delete_document(self, kb: str, doc_id: str) -> Job:
        return _job(await self._call("DELETE", f"/v1/kbs/{kb}/documents/{doc_id}"))

    async def job(self, job_id: str) -> Job:
        return _job(await self._call("GET", f"/v1/jobs/{job_id}"))

    async def cancel(self, job: Job | str) -> Job:
        job_id = job if isinstance(job, str) else job.id
        return _job(await self._call("POST", f"/v1/jobs/{job_id}/cancel"))

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

    async def search(self, kb: str, query: str, k: int | None = None,
                     filters: Mapping[str, Any] | None = None) -> list[ScoredChunk]:  # fmt: skip
        body = {"query": query, "k": k, "filters": dict(filters) if filters else None}
        data = await self._call("POST", f"/v1/kbs/{kb}/search", json=body)
        return [_hit(h) for h in data["data"]]

    async def ask(self, kb: str, question: str, k: int | None = None,
                  filters: Mapping[str, Any] | None = None) -> Answer:  # fmt: skip
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None}
        return _answer(await self._call("POST", f"/v1/kbs/{kb}/ask", json=body))

    async def events(
        self, kb: str, question: str, k: int | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:  # fmt: skip
        body = {"question": question, "k": k, "filters": dict(filters) if filters else None,
                "stream": True}  # fmt: skip
        headers = {"Accept": "text/event-stream"}
        async with self._http.stream("POST", f"/v1/kbs/{kb}/ask", json=body, headers=headers) as r:
            if r.status_code >= 400:
                await r.aread()
                _raise_for(r)
            parser = _SSE()
            async for line in r.aiter_lines():
                parsed = parser.line(line)
                if parsed is not None:
                    yield _event(*parsed)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
