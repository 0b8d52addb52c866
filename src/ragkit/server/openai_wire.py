"""The JSON of the OpenAI-compatible endpoints (``/v1/chat/completions``, ``/v1/models``).

Shapes follow OpenAI's Chat Completions API, so its SDKs and the chat UIs built on them
read the answers unchanged. ragkit adds what OpenAI's shape has no place for, in fields
clients that do not know them ignore: each ``url_citation`` annotation carries a
``ragkit`` object (source, page, exact character span and quote), and the completion
(or the last chunk of a stream) carries the numbered ``sources``.

Requests are read leniently, as chat clients send many parameters ragkit has no use for
(``temperature``, ``tools``, ...): unknown names are ignored, but a known one of the
wrong type is a 400, as OpenAI answers it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ragkit.server.wire import UsageOut
from ragkit.types import Answer, Citation, document_id

__all__ = [
    "Annotation",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatMessageOut",
    "ChunkChoice",
    "ChunkDelta",
    "ContentPart",
    "ModelList",
    "ModelOut",
    "OpenAIErrorBody",
    "OpenAIErrorDetail",
    "RagkitCitation",
    "SourceOut",
    "StreamOptions",
    "UrlCitation",
    "annotations_of",
    "sources_of",
]

_LENIENT = ConfigDict(extra="ignore")
_MARKER = re.compile(r"\[(\d+)\]")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error of these endpoints, in OpenAI's shape."""

    error: OpenAIErrorDetail


# -- models ----------------------------------------------------------------------------


class ModelOut(BaseModel):
    """A model is a kb of the key's tenant; its id is the kb's name."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time the kb was made")
    owned_by: str = Field(description="the tenant")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# -- requests --------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = _LENIENT
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = _LENIENT
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The message's text (its text parts joined, for a list of parts)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    model_config = _LENIENT
    include_usage: bool | None = None


class ChatCompletionRequest(BaseModel):
    """A chat completion request: ``model`` names a kb; the last user message is the
    question. Parameters ragkit does not use are accepted and ignored."""

    model_config = _LENIENT
    model: str = Field(min_length=1, description="the kb to answer from (GET /v1/models)")
    messages: list[ChatMessage] = Field(
        min_length=1, description="the conversation; its last user message is the question"
    )
    stream: bool | None = Field(default=False, description="answer as chat.completion.chunk SSE")
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=128, description="only 1 is supported")
    temperature: float | None = Field(default=None, ge=0, le=2, description="ignored")
    top_p: float | None = Field(default=None, ge=0, le=1, description="ignored")
    max_tokens: int | None = Field(default=None, ge=1, description="ignored")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="ignored")
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, description="ignored")
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, description="ignored")
    stop: str | list[str] | None = Field(default=None, description="ignored")
    seed: int | None = Field(default=None, description="ignored")
    user: str | None = Field(default=None, description="ignored")


# -- responses -------------------------------------------------------------------------


class UrlCitation(BaseModel):
    """Where a citation marker sits in the answer: ``content[start_index:end_index]`` is
    the marker ``[n]``; ``url`` is the cited document in this API."""

    start_index: int
    end_index: int
    title: str = Field(description="the cited place: file.pdf, p. 12")
    url: str


class RagkitCitation(BaseModel):
    """The exact passage a marker cites: ``document.text[start:end] == quote``."""

    marker: int
    chunk_id: str
    document_id: str
    source: str
    page: int | None = None
    page_end: int | None = None
    start: int
    end: int
    quote: str
    location: str

    @classmethod
    def of(cls, c: Citation) -> RagkitCitation:
        return cls(
            marker=c.marker,
            chunk_id=c.chunk_id,
            document_id=document_id(c.source),
            source=c.source,
            page=c.page,
            page_end=c.page_end,
            start=c.start,
            end=c.end,
            quote=c.quote,
            location=c.location,
        )


class Annotation(BaseModel):
    type: Literal["url_citation"] = "url_citation"
    url_citation: UrlCitation
    ragkit: RagkitCitation


class SourceOut(RagkitCitation):
    """One numbered source of the answer (what ``[marker]`` refers to)."""

    url: str


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="the verified answer, with [n] markers")
    refusal: None = None
    annotations: list[Annotation]


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A whole answer."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut | None = Field(
        default=None,
        description="null when no language model wrote the answer (the extractive "
        "default, a refusal before generation) or its generator cannot count tokens",
    )
    system_fingerprint: None = None
    sources: list[SourceOut] = Field(description="the numbered sources the markers cite")


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    annotations: list[Annotation] | None = Field(default=None, description="last chunk only")


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` line of a streamed answer. Deltas carry verified text; only the
    last chunk (``finish_reason: "stop"``) carries the annotations and ``sources``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    sources: list[SourceOut] | None = Field(default=None, description="last chunk only")
    usage: UsageOut | None = Field(
        default=None,
        description="with stream_options.include_usage: null on every chunk but an extra "
        "last one with no choices",
    )


def document_url(base_url: str, kb: str, source: str) -> str:
    """The API address of the document ``source`` of ``kb``."""
    return f"{base_url.rstrip('/')}/v1/kbs/{kb}/documents/{document_id(source)}"


def annotations_of(answer: Answer, kb: str, base_url: str) -> list[Annotation]:
    """One ``url_citation`` per marker in the answer's text, in text order."""
    by_marker = {c.marker: c for c in answer.citations}
    out = []
    for match in _MARKER.finditer(answer.text):
        citation = by_marker.get(int(match.group(1)))
        if citation is None:
            continue
        out.append(
            Annotation(
                url_citation=UrlCitation(
                    start_index=match.start(),
                    end_index=match.end(),
                    title=citation.location,
                    url=document_url(base_url, kb, citation.source),
                ),
                ragkit=RagkitCitation.of(citation),
            )
        )
    return out


def sources_of(citations: Sequence[Citation], kb: str, base_url: str) -> list[SourceOut]:
    """The numbered sources, in marker order."""
    return [
        SourceOut(**RagkitCitation.of(c).model_dump(), url=document_url(base_url, kb, c.source))
        for c in sorted(citations, key=lambda c: c.marker)
    ]
