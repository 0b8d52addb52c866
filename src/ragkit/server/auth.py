"""API keys on requests: ``Authorization: Bearer rk_<id>_<secret>`` -> the key, or 401/403.

Scopes nest: ``write`` includes ``read``, ``admin`` includes both. A missing, malformed,
unknown or revoked key answers 401 with ``WWW-Authenticate: Bearer``; a key without the
scope an endpoint needs answers 403. The key itself never appears in a response or a
log line: only its public id does, in logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragkit.backends.catalog import SCOPES, ApiKey
from ragkit.backends.keys import authenticate
from ragkit.server.errors import ApiError

if TYPE_CHECKING:
    from ragkit.server.state import ServerState

__all__ = ["get_state", "has_scope", "require"]

logger = logging.getLogger(__name__)

# Documents the scheme in OpenAPI; missing credentials are answered below, not by it.
_bearer = HTTPBearer(auto_error=False, description="an API key: ragkit keys create")
_CHALLENGE = 'Bearer realm="ragkit"'


def get_state(request: Request) -> ServerState:
    """The app's :class:`~ragkit.server.state.ServerState`."""
    state: ServerState = request.app.state.ragkit
    return state


def has_scope(key: ApiKey, scope: str) -> bool:
    """Whether ``key`` may do what ``scope`` allows (scopes nest: admin > write > read)."""
    granted = max((SCOPES.index(s) for s in key.scopes if s in SCOPES), default=-1)
    return granted >= SCOPES.index(scope)


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = _CHALLENGE if error is None else f'{_CHALLENGE}, error="{error}"'
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": challenge})


def require(scope: str) -> Callable[..., ApiKey]:
    """A dependency: the request's live key, which must hold ``scope``; also takes one
    request from the key's rate limit (429 with ``Retry-After`` when it is used up)."""
    if scope not in SCOPES:  # pragma: no cover - a programming error
        raise ValueError(scope)

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> ApiKey:
        state = get_state(request)
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized(
                "an API key is required: send 'Authorization: Bearer <key>' (an operator "
                "makes one with: ragkit keys create --kb ... --tenant ...)"
            )
        key = authenticate(state.catalog, credentials.credentials)
        if key is None:
            raise _unauthorized("the API key is not valid (unknown, revoked or mistyped)",
                                "invalid_token")  # fmt: skip
        wait = state.limiter.acquire(key.id)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this key: retry in {wait:.0f} s",
                {"Retry-After": str(int(wait))},
            )
        if not has_scope(key, scope):
            logger.info("key %s lacks the %s scope for %s", key.id, scope, request.url.path)
            raise ApiError(
                403,
                "forbidden",
                f"this API key lacks the {scope!r} scope (it has: {', '.join(key.scopes)})",
            )
        return key

    return dependency
