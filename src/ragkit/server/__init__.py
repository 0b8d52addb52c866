"""ragkit as an HTTP service (``pip install "ragkit[server]"``; ``ragkit serve``).

``create_app(settings)`` builds a FastAPI app over every kb of one engine (a folder of
kbs, or a PostgreSQL / Milvus URL): kbs, documents and ingest jobs, ``search`` and
``ask`` (JSON or server-sent events), API keys with scopes and tenants. See
``docs/server.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragkit.server.settings import ServerSettings

if TYPE_CHECKING:
    from ragkit.server.app import create_app

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ragkit._deps import require

        require("fastapi", extra="server", purpose="ragkit's HTTP server")
        from ragkit.server.app import create_app

        return create_app
    raise AttributeError(f"module 'ragkit.server' has no attribute {name!r}")
