"""HTTP errors: one JSON body for every failure, and what each ragkit error answers.

Every error answers ``{"error": {"code": ..., "message": ...}}`` (the shape OpenAI's
API uses, so chat clients show the message). Bodies never repeat request headers,
keys or the input that failed validation: a 422 says which field was wrong and why,
not what was sent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ragkit.errors import (
    ConfigurationError,
    KnowledgeBaseLockedError,
    LoaderError,
    RagkitError,
    StoreError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

__all__ = ["ApiError", "error_body", "install_error_handlers", "not_found", "status_of"]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error with a code and a message for the client.

    Args:
        status: the HTTP status.
        code: a short machine-readable code (``not_found``, ``forbidden``...).
        message: what was wrong and what to do, for people.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    """The one 404 for a kb, job or document that is missing or another tenant's."""
    return ApiError(404, "not_found", f"{what} not found")


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message}}


def status_of(exc: RagkitError) -> tuple[int, str]:
    if isinstance(exc, KnowledgeBaseLockedError):
        return 409, "kb_locked"
    if isinstance(exc, (ConfigurationError, LoaderError)):
        return 400, "invalid_request"
    if isinstance(exc, StoreError):
        return 503, "store_unavailable"
    return 500, "internal_error"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with :func:`error_body`."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Where and why only: the rejected input may be a secret or a whole document.
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse(error_body("invalid_request", "; ".join(parts)), 422)

    async def ragkit_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RagkitError)
        status, code = status_of(exc)
        if status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body(code, str(exc)), status)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "the server failed to answer; see its log"), 500
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RagkitError, ragkit_error)
    app.add_exception_handler(Exception, unexpected)
