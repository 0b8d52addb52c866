"""The JSON the API speaks (pydantic models), and conversion from ragkit's own types.

Wire models are kept apart from the domain dataclasses of :mod:`ragkit.types`: the API
can grow a field or rename one for clients without touching the library, and the
library's types never learn about HTTP. Conversions go one way here (domain -> wire);
:mod:`ragkit.client` reads the JSON back into the domain types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragkit.backends.catalog import JobRecord, KbInfo
from ragkit.types import Answer, Chunk, Citation, ScoredChunk, Usage

__all__ = [
    "AnswerOut",
    "AskRequest",
    "ChunkOut",
    "CitationOut",
    "DeltaOut",
    "DocumentList",
    "DocumentOut",
    "ErrorBody",
    "ErrorDetail",
    "FileErrorOut",
    "JobOut",
    "KbCreate",
    "KbList",
    "KbOut",
    "ScoredChunkOut",
    "SearchRequest",
    "SearchResponse",
    "SourcesOut",
    "SyncRequest",
    "TextDocument",
    "TextUpload",
]

_STRICT = ConfigDict(extra="forbid")
JobState = Literal["queued", "running", "succeeded", "failed", "partial", "canceled"]
MetadataValue = str | int | float | bool | None


class ErrorDetail(BaseModel):
    code: str = Field(description="short machine-readable code: not_found, forbidden, ...")
    message: str = Field(description="what was wrong, for people")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


# -- knowledge bases -------------------------------------------------------------------


class KbCreate(BaseModel):
    model_config = _STRICT
    name: str = Field(
        description="1 to 40 lowercase letters, digits or single underscores, from a letter",
        min_length=1,
        max_length=40,
        # check_kb_name's rule, "__" included (schemathesis found the two disagreeing)
        pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*_?$",
    )


class KbOut(BaseModel):
    name: str
    tenant: str
    created: float = Field(description="Unix time")
    documents: int | None = Field(default=None, description="sources indexed (GET /kbs/{kb} only)")
    chunks: int | None = Field(default=None, description="chunks stored (GET /kbs/{kb} only)")

    @classmethod
    def of(cls, info: KbInfo) -> KbOut:
        return cls(name=info.name, tenant=info.tenant, created=info.created)


class KbList(BaseModel):
    data: list[KbOut]


# -- documents and jobs ----------------------------------------------------------------


class TextDocument(BaseModel):
    model_config = _STRICT
    text: str = Field(min_length=1, description="the document's whole text")
    source: str = Field(
        min_length=1,
        max_length=512,
        description="its name: how citations and the documents list show it",
    )
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class TextUpload(BaseModel):
    model_config = _STRICT
    documents: list[TextDocument] = Field(min_length=1, max_length=10_000)


class SyncRequest(BaseModel):
    model_config = _STRICT
    path: str = Field(min_length=1, description="a server-side folder under an allowed root")
    include: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude: list[str] = Field(default_factory=list)


class FileErrorOut(BaseModel):
    source: str
    reason: str


class JobOut(BaseModel):
    """An ingest job; poll it, or follow ``GET /v1/jobs/{id}/events``."""

    id: str
    kb: str
    kind: Literal["upload", "replace", "delete", "sync"]
    state: JobState
    created: float
    updated: float
    done: int = Field(default=0, description="files or documents processed so far")
    total: int | None = Field(default=None, description="how many there are, when known")
    errors: list[FileErrorOut] = Field(default_factory=list, description="per-file failures")
    report: dict[str, Any] | None = Field(
        default=None, description="the IndexReport, when finished"
    )
    message: str | None = None

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        d = job.detail
        return cls(
            id=job.id,
            kb=job.kb,
            kind=job.kind,  # type: ignore[arg-type]
            state=job.state,  # type: ignore[arg-type]
            created=job.created,
            updated=job.updated,
            done=int(d.get("done", 0)),
            total=d.get("total"),
            errors=[FileErrorOut(**e) for e in d.get("errors", ())],
            report=d.get("report"),
            message=d.get("message"),
        )


class ChunkOut(BaseModel):
    """A chunk and exactly where it lies: ``document.text[start:end] == text``."""

    id: str
    text: str
    document_id: str
    source: str
    start: int
    end: int
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    page_label_end: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    location: str = Field(description="human-readable: file.pdf, p. 12")

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkOut:
        return cls(
            id=chunk.id,
            text=chunk.text,
            document_id=chunk.document_id,
            source=chunk.source,
            start=chunk.start,
            end=chunk.end,
            page=chunk.page,
            page_end=chunk.page_end,
            page_label=chunk.page_label,
            page_label_end=chunk.page_label_end,
            metadata=_plain(chunk.metadata),
            location=chunk.location,
        )


class DocumentOut(BaseModel):
    id: str = Field(description="stable id of the document (a hash of its source)")
    source: str
    content_hash: str
    state: Literal["done", "pending"]
    chunk_count: int
    chunks: list[ChunkOut] | None = Field(
        default=None, description="with ?chunks=true, in text order"
    )


class DocumentList(BaseModel):
    data: list[DocumentOut]


# -- search and ask --------------------------------------------------------------------


class SearchRequest(BaseModel):
    model_config = _STRICT
    query: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(
        default=None, ge=1, le=100, description="chunks to return (server default)"
    )
    filters: dict[str, Any] | None = Field(default=None, description="ragkit metadata filters")


class ScoredChunkOut(BaseModel):
    chunk: ChunkOut
    score: float

    @classmethod
    def of(cls, hit: ScoredChunk) -> ScoredChunkOut:
        return cls(chunk=ChunkOut.of(hit.chunk), score=hit.score)


class SearchResponse(BaseModel):
    data: list[ScoredChunkOut]


class AskRequest(BaseModel):
    model_config = _STRICT
    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(default=None, ge=1, le=100)
    filters: dict[str, Any] | None = None
    stream: bool = Field(
        default=False,
        description="answer as server-sent events (as does Accept: text/event-stream)",
    )


class CitationOut(BaseModel):
    """What one ``[n]`` marker points at: the quoted text and its exact place."""

    marker: int
    chunk_id: str
    source: str
    start: int
    end: int
    quote: str
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    page_label_end: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    location: str

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(
            marker=c.marker,
            chunk_id=c.chunk_id,
            source=c.source,
            start=c.start,
            end=c.end,
            quote=c.quote,
            page=c.page,
            page_end=c.page_end,
            page_label=c.page_label,
            page_label_end=c.page_label_end,
            metadata=_plain(c.metadata),
            location=c.location,
        )


class UsageOut(BaseModel):
    """Tokens the language model read and wrote for an answer (the shape of OpenAI's
    ``usage``, which the OpenAI-compatible endpoint sends too)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage | None) -> UsageOut | None:
        if usage is None:
            return None
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class AnswerOut(BaseModel):
    """An answer; the ``done`` event of a stream carries the same object."""

    question: str
    text: str
    citations: list[CitationOut]
    contexts: list[ScoredChunkOut]
    dropped: list[ScoredChunkOut] = Field(default_factory=list)
    invalid_markers: list[int] = Field(default_factory=list)
    model: str = ""
    extractive: bool = False
    refused: bool = False
    unsupported: list[str] = Field(default_factory=list)
    related: list[ScoredChunkOut] = Field(default_factory=list)
    usage: UsageOut | None = Field(
        default=None,
        description="null when no language model wrote the answer (extractive, or "
        "refused before generation) or its generator cannot count tokens",
    )

    @classmethod
    def of(cls, a: Answer) -> AnswerOut:
        return cls(
            question=a.question,
            text=a.text,
            citations=[CitationOut.of(c) for c in a.citations],
            contexts=[ScoredChunkOut.of(h) for h in a.contexts],
            dropped=[ScoredChunkOut.of(h) for h in a.dropped],
            invalid_markers=list(a.invalid_markers),
            model=a.model,
            extractive=a.extractive,
            refused=a.refused,
            unsupported=list(a.unsupported),
            related=[ScoredChunkOut.of(h) for h in a.related],
            usage=UsageOut.of(a.usage),
        )


class SourcesOut(BaseModel):
    """The ``sources`` event: the passages retrieved, best first (sent once)."""

    hits: list[ScoredChunkOut]


class DeltaOut(BaseModel):
    """A ``delta`` event: more verified answer text."""

    text: str


def _plain(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in metadata.items()}
