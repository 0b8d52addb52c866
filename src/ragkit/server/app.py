"""The app factory: ``create_app(settings)`` -> a FastAPI app serving one engine's kbs.

Everything the app holds lives on ``app.state.ragkit`` (a
:class:`~ragkit.server.state.ServerState`); nothing is kept at module level, so two
apps in one process share nothing. Routers are mounted in one place,
:func:`ragkit.server.routers.include_routers`; an extension adds its own routers with
``create_app(settings, extra_routers=(router,))``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import Route

from ragkit.backends import open_catalog
from ragkit.backends.catalog import Catalog, KbInfo
from ragkit.server.errors import install_error_handlers
from ragkit.server.limits import BodyLimitMiddleware
from ragkit.server.mcp_tools import McpEndpoint
from ragkit.server.metrics import MetricsMiddleware
from ragkit.server.routers import include_routers
from ragkit.server.settings import ServerSettings
from ragkit.server.state import RagOpener, ServerState

__all__ = ["API_VERSION", "CONFIG_ENV", "SETTINGS_ENV", "create_app", "create_app_from_env"]

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"
#: The environment variable that carries settings (JSON) to uvicorn's worker processes.
SETTINGS_ENV = "RAGKIT_SERVER_SETTINGS"
#: The environment variable that names the pipeline's ragkit.toml to those workers.
CONFIG_ENV = "RAGKIT_CONFIG_FILE"

_DESCRIPTION = """\
Question answering over your documents, with exact citations.

Every endpoint under `/v1` needs an API key (`Authorization: Bearer rk_...`), bound to
one tenant: a key reaches only its tenant's knowledge bases. Scopes nest: `read`
(search, ask, get), `write` (upload, delete, sync, cancel), `admin` (create and delete
knowledge bases). Errors answer `{"error": {"code", "message"}}`.
"""


def create_app(
    settings: ServerSettings,
    *,
    catalog: Catalog | None = None,
    open_rag: RagOpener | None = None,
    extra_routers: tuple[APIRouter, ...] = (),
) -> FastAPI:
    """A FastAPI app serving every kb of the engine ``settings.kb`` names.

    Example:
        >>> app = create_app(ServerSettings(kb="kbs"))  # doctest: +SKIP
        >>> uvicorn.run(app)  # doctest: +SKIP

    Args:
        settings: the operator's settings.
        catalog: the catalog to serve (default: ``open_catalog(settings.kb)``); the app
            closes it on shutdown.
        open_rag: opens a kb's RAG (default: the embedded defaults); tests pass one with
            a fake embedder.
        extra_routers: more routers (their prefix set on them) mounted after the built-in ones.
    """
    state = ServerState(settings, catalog or open_catalog(settings.kb), open_rag)
    mcp = McpEndpoint(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _announce(state)
        try:
            async with mcp.running():
                yield
        finally:
            state.close()

    app = FastAPI(
        title="ragkit",
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ragkit = state
    install_error_handlers(app)
    include_routers(app, extra_routers)
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))
    # Added innermost first: metrics see every answer, CORS headers go on 413s too.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def create_app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory ragkit.server.app:create_app_from_env``: settings
    from the JSON in ``RAGKIT_SERVER_SETTINGS`` (what ``ragkit serve --workers N`` sets)."""
    import json

    raw = os.environ.get(SETTINGS_ENV)
    data = json.loads(raw) if raw else {}
    settings = ServerSettings.from_mapping(data, origin=SETTINGS_ENV)
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return create_app(settings)
    from ragkit.config import RagkitConfig, load_mapping

    # Each worker reads the pipeline (embedder, generator, reranker, ...) from the file.
    pipeline = RagkitConfig.from_mapping(load_mapping(path), origin=path)

    def open_rag(info: KbInfo) -> Any:
        return pipeline.rag(info.settings, tenant=info.tenant)

    return create_app(settings, open_rag=open_rag)


def _announce(state: ServerState) -> None:
    catalog = state.catalog
    if not catalog.list_keys():
        logger.warning(
            "no API keys exist for %s: every request will answer 401. Create one with: "
            "ragkit keys create --kb %s --tenant default --scopes read,write,admin",
            catalog.location,
            catalog.location,
        )
    if not state.settings.cors_origins:
        logger.info("CORS is closed (no cors_origins): browsers on other origins cannot call")
    logger.info(
        "serving %s (%d kbs); job worker %s",
        catalog.location,
        len(catalog.list_kbs()),
        state.jobs.worker_id,
    )
