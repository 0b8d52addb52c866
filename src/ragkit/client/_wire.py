"""What the client reads and sends: remote kbs, documents and jobs, the answer and
chunk types parsed from JSON, server-sent events, and the server's errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
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
    Usage,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "TERMINAL",
    "Job",
    "RemoteDocument",
    "RemoteKb",
    "SSEParser",
    "file_parts",
    "idempotency_headers",
    "parse_answer",
    "parse_document",
    "parse_event",
    "parse_hit",
    "parse_job",
    "parse_kb",
    "raise_for",
    "require_httpx",
    "text_documents",
]

TERMINAL = ("succeeded", "failed", "partial", "canceled")


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
        return self.state in TERMINAL


# -- JSON -> domain types --------------------------------------------------------------


def parse_chunk(d: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=d["id"],
        text=d["text"],
        document_id=d["document_id"],
        source=d["source"],
        start=d["start"],
        end=d["end"],
        page=d.get("page"),
        page_end=d.get("page_end"),
        page_label=d.get("page_label"),
        page_label_end=d.get("page_label_end"),
        metadata=d.get("metadata") or {},
    )


def parse_hit(d: Mapping[str, Any]) -> ScoredChunk:
    return ScoredChunk(parse_chunk(d["chunk"]), float(d["score"]))


def parse_citation(d: Mapping[str, Any]) -> Citation:
    return Citation(
        marker=d["marker"],
        chunk_id=d["chunk_id"],
        source=d["source"],
        start=d["start"],
        end=d["end"],
        quote=d["quote"],
        page=d.get("page"),
        page_end=d.get("page_end"),
        page_label=d.get("page_label"),
        page_label_end=d.get("page_label_end"),
        metadata=d.get("metadata") or {},
    )


def parse_answer(d: Mapping[str, Any]) -> Answer:
    return Answer(
        question=d["question"],
        text=d["text"],
        citations=tuple(parse_citation(c) for c in d.get("citations", ())),
        contexts=tuple(parse_hit(h) for h in d.get("contexts", ())),
        dropped=tuple(parse_hit(h) for h in d.get("dropped", ())),
        invalid_markers=tuple(d.get("invalid_markers", ())),
        model=d.get("model", ""),
        extractive=bool(d.get("extractive")),
        refused=bool(d.get("refused")),
        unsupported=tuple(d.get("unsupported", ())),
        related=tuple(parse_hit(h) for h in d.get("related", ())),
        usage=Usage.from_wire(d.get("usage")),
    )


def parse_job(d: Mapping[str, Any]) -> Job:
    return Job(
        id=d["id"],
        kb=d["kb"],
        kind=d["kind"],
        state=d["state"],
        created=d["created"],
        updated=d["updated"],
        done=d.get("done", 0),
        total=d.get("total"),
        errors=tuple(FileIssue(e["source"], e["reason"]) for e in d.get("errors", ())),
        report=d.get("report"),
        message=d.get("message"),
        raw=d,
    )


def parse_kb(d: Mapping[str, Any]) -> RemoteKb:
    return RemoteKb(d["name"], d["tenant"], d["created"], d.get("documents"), d.get("chunks"))


def parse_document(d: Mapping[str, Any]) -> RemoteDocument:
    chunks = d.get("chunks")
    return RemoteDocument(
        d["id"],
        d["source"],
        d["content_hash"],
        d["state"],
        d["chunk_count"],
        None if chunks is None else tuple(parse_chunk(c) for c in chunks),
    )


def parse_event(name: str, data: Mapping[str, Any]) -> StreamEvent:
    if name == "sources":
        return SourcesEvent(tuple(parse_hit(h) for h in data["hits"]))
    if name == "delta":
        return DeltaEvent(data["text"])
    if name == "citation":
        return CitationEvent(parse_citation(data))
    if name == "done":
        return DoneEvent(parse_answer(data))
    if name == "error":
        raise RemoteError(data.get("message", "the answer failed"), 200, data.get("code", ""))
    raise RemoteError(f"unknown event {name!r} from the server", 200)


class SSEParser:
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


def raise_for(response: httpx.Response) -> None:
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


def file_parts(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, tuple[str, bytes]]]:
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise ConfigurationError(f"{path} is not a file")
        out.append(("files", (path.name, path.read_bytes())))
    return out


def text_documents(documents: Iterable[Any]) -> dict[str, Any]:
    items = []
    for d in documents:
        if isinstance(d, Mapping):
            items.append(
                {
                    "text": d["text"],
                    "source": d["source"],
                    "metadata": dict(d.get("metadata") or {}),
                }
            )
        else:  # a ragkit Document
            items.append({"text": d.text, "source": d.source, "metadata": dict(d.metadata)})
    return {"documents": items}


def idempotency_headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def require_httpx() -> Any:
    from ragkit._deps import require

    return require("httpx", extra="server", purpose="ragkit.client")
