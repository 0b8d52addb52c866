"""MCP at ``/mcp`` (Streamable HTTP, the official ``mcp`` package): read-only tools.

Agents that speak the Model Context Protocol call three tools, each naming the kb it
reads (a kb of the API key's tenant; another tenant's kb is "not found"):

- ``search(kb, query, k)``: the chunks most relevant to ``query``, with their exact
  locations;
- ``ask(kb, question, k)``: a verified answer with its numbered citations;
- ``get_document(kb, document)``: one document (by id or source name), its text and chunks.

Every request to ``/mcp`` needs ``Authorization: Bearer <key>`` with the ``read`` scope,
checked exactly as the ``/v1`` routes check it (401 with ``WWW-Authenticate``, 403, 429).
The transport is stateless (each POST stands alone, no session is kept in the process),
so any worker of a multi-worker server answers any request. The MCP server object and
its session manager belong to one :class:`McpEndpoint`, made by ``create_app`` and
started by the app's lifespan: nothing lives at module level.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ragkit.backends.catalog import ApiKey
from ragkit.errors import RagkitError
from ragkit.server.auth import require
from ragkit.server.errors import ApiError, error_body
from ragkit.server.ingest import find_source
from ragkit.types import Chunk, document_id

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from ragkit.server.state import ServerState

__all__ = ["KEY_SCOPE", "TOOLS", "McpEndpoint"]

logger = logging.getLogger(__name__)

#: Where the request's authenticated key travels in the ASGI scope to the tools.
KEY_SCOPE = "ragkit.api_key"
_MAX_TEXT = 10_000

_KB = {"type": "string", "description": "the knowledge base (GET /v1/kbs lists them)"}
_K = {"type": "integer", "minimum": 1, "maximum": 100, "description": "passages to use"}
#: name -> (description, JSON Schema of the arguments).
TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "search": (
        "Find the passages of a knowledge base most relevant to a query. Each hit has "
        "its text, source, page and exact character span in the source document.",
        {
            "type": "object",
            "properties": {"kb": _KB, "query": {"type": "string"}, "k": _K},
            "required": ["kb", "query"],
        },
    ),
    "ask": (
        "Answer a question from a knowledge base. The answer cites its sources with "
        "[n] markers; every citation quotes the exact passage it relies on.",
        {
            "type": "object",
            "properties": {"kb": _KB, "question": {"type": "string"}, "k": _K},
            "required": ["kb", "question"],
        },
    ),
    "get_document": (
        "Read one document of a knowledge base: by its id (document_id in search hits) "
        "or its source name. Returns its text and its chunks with their spans.",
        {
            "type": "object",
            "properties": {
                "kb": _KB,
                "document": {"type": "string", "description": "a document id or source"},
            },
            "required": ["kb", "document"],
        },
    ),
}


class _ToolError(Exception):
    """A tool call that fails in a way the calling model should see and correct."""


class McpEndpoint:
    """The ASGI app at ``/mcp``: checks the key, then hands the request to MCP.

    Example:
        >>> endpoint = McpEndpoint(state)  # doctest: +SKIP
        >>> async with endpoint.running():  # in the app's lifespan  # doctest: +SKIP
        ...     ...

    Args:
        state: the app's state (catalog, open kbs, limits).
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._read = require("read")
        self._manager: StreamableHTTPSessionManager | None = None
        self._missing: str | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP while this context is open (a new session manager each time: one
        can run only once, and an app's lifespan may run more than once in tests)."""
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        except ImportError as exc:
            self._missing = (
                f"the MCP endpoint needs the mcp package ({exc}): pip install 'ragkit[server]'"
            )
            logger.warning("%s", self._missing)
            yield
            return
        manager = StreamableHTTPSessionManager(
            app=self._server(),
            json_response=True,
            stateless=True,
            max_request_body_size=self.state.settings.max_request_bytes,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - mounted on an HTTP route
            return
        request = Request(scope, receive)
        try:
            key = await run_in_threadpool(self._authenticate, request)
        except ApiError as exc:
            response = JSONResponse(
                error_body(exc.code, exc.message), exc.status, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        manager = self._manager
        if manager is None:
            message = self._missing or "the MCP endpoint is not running (start the app's lifespan)"
            await JSONResponse(error_body("unavailable", message), 503)(scope, receive, send)
            return
        await manager.handle_request({**scope, KEY_SCOPE: key}, receive, send)

    def _authenticate(self, request: Request) -> ApiKey:
        from fastapi.security import HTTPAuthorizationCredentials
        from fastapi.security.utils import get_authorization_scheme_param

        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        credentials = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
            if scheme and token
            else None
        )
        return self._read(request, credentials)

    # -- the MCP server ------------------------------------------------------------------

    def _server(self) -> Server[Any]:
        import mcp_types as types
        from mcp.server.context import ServerRequestContext
        from mcp.server.lowlevel import Server

        from ragkit.server.app import API_VERSION

        hints = types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True,
            open_world_hint=False,
        )  # fmt: skip
        tools = [
            types.Tool(name=name, description=text, input_schema=schema, annotations=hints)
            for name, (text, schema) in TOOLS.items()
        ]

        async def list_tools(
            ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=tools)

        async def call_tool(
            ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            key = ctx.request.scope.get(KEY_SCOPE) if ctx.request is not None else None
            if not isinstance(key, ApiKey):  # pragma: no cover - __call__ always sets it
                raise RuntimeError("an MCP call arrived without an authenticated key")
            arguments = dict(params.arguments or {})
            try:
                data, text = await run_in_threadpool(self._call, key, params.name, arguments)
            except (_ToolError, ApiError) as exc:
                message = exc.message if isinstance(exc, ApiError) else str(exc)
                return types.CallToolResult(
                    content=[types.TextContent(text=message)], is_error=True
                )
            except RagkitError as exc:
                return types.CallToolResult(content=[types.TextContent(text=str(exc))],
                                            is_error=True)  # fmt: skip
            return types.CallToolResult(
                content=[types.TextContent(text=text)], structured_content=data
            )

        return Server(
            "ragkit",
            version=API_VERSION,
            instructions="Read-only access to the knowledge bases of your API key's tenant.",
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )

    def _call(
        self, key: ApiKey, name: str, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str]:
        if name not in TOOLS:
            raise _ToolError(f"unknown tool {name!r}; the tools are: {', '.join(TOOLS)}")
        kb = _string(arguments, "kb", 200)
        rag = self.state.kbs.rag(key.tenant, kb)
        k = _k(arguments, self.state.settings.default_k)
        if name == "search":
            hits = rag.retrieve(_string(arguments, "query", _MAX_TEXT), k)
            data: dict[str, Any] = {"hits": [{"score": h.score, **_chunk(h.chunk)} for h in hits]}
            return data, json.dumps(data, ensure_ascii=False)
        if name == "ask":
            answer = rag.ask(_string(arguments, "question", _MAX_TEXT), k)
            data = {
                "text": answer.text,
                "refused": answer.refused,
                "extractive": answer.extractive,
                "citations": [
                    {
                        "marker": c.marker,
                        "source": c.source,
                        "document_id": document_id(c.source),
                        "page": c.page,
                        "start": c.start,
                        "end": c.end,
                        "quote": c.quote,
                        "location": c.location,
                    }
                    for c in answer.citations
                ],
            }
            return data, (answer.text + "\n" + answer.format_sources()).strip()
        return self._document(rag, _string(arguments, "document", 1000))

    @staticmethod
    def _document(rag: Any, wanted: str) -> tuple[dict[str, Any], str]:
        with rag.backend.reading():
            named = wanted in rag.record.sources()
        source = wanted if named else find_source(rag, wanted)
        with rag.backend.reading():
            entry = rag.record.get(source) if source is not None else None
            chunks: list[Chunk] = (
                sorted(rag.store.get(list(entry.chunk_ids)), key=lambda c: c.start)
                if entry is not None
                else []
            )
        if entry is None:
            raise _ToolError(f"document {wanted!r} not found")
        text = _joined(chunks)
        data = {
            "id": document_id(entry.source),
            "source": entry.source,
            "content_hash": entry.content_hash,
            "text": text,
            "chunks": [_chunk(c) for c in chunks],
        }
        return data, text


def _string(arguments: Mapping[str, Any], name: str, limit: int) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _ToolError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise _ToolError(f"{name} is longer than {limit} characters")
    return value


def _k(arguments: Mapping[str, Any], default: int) -> int:
    value = arguments.get("k", default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise _ToolError("k must be a whole number from 1 to 100")
    return value


def _chunk(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.id,
        "document_id": chunk.document_id,
        "source": chunk.source,
        "location": chunk.location,
        "page": chunk.page,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
    }


def _joined(chunks: list[Chunk]) -> str:
    """The document's text from its chunks (in start order; overlaps written once, gaps
    between chunks marked)."""
    parts: list[str] = []
    cursor = 0
    for chunk in chunks:
        if parts and chunk.start > cursor:
            parts.append("\n[…]\n")
        skip = max(0, cursor - chunk.start)
        if skip < len(chunk.text):
            parts.append(chunk.text[skip:])
        cursor = max(cursor, chunk.end)
    return "".join(parts)
