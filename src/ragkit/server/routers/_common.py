"""What the routers share: documented error responses and the dependency aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from ragkit.backends.catalog import ApiKey
from ragkit.server.auth import get_state, require
from ragkit.server.state import ServerState
from ragkit.server.wire import ErrorBody

__all__ = ["AdminKey", "ReadKey", "State", "WriteKey", "errors"]

ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
State = Annotated[ServerState, Depends(get_state)]

_DESCRIPTIONS = {
    400: "the request is invalid (the message says why)",
    401: "no API key, or not a valid one",
    403: "the API key lacks the scope",
    404: "no such kb, document or job for this key's tenant",
    409: "conflicts with the current state",
    413: "the request body is over the server's limit",
    422: "a field is missing or invalid",
    429: "too many requests for this key: see Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (401, 403, 422 and 429 always)."""
    every = sorted({401, 403, 422, 429, *statuses})
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in every}
