"""The API's routers, one per resource, all registered here (and only here).

A new resource is a module with a ``router`` (a :class:`fastapi.APIRouter` whose
``prefix`` is ``/v1`` for API routes) added to :data:`ROUTERS`: :func:`include_routers`
mounts them in this order. The prefix lives on the router, so a route's template (what
``/metrics`` labels requests with) is its whole path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragkit.server.routers import documents as documents
from ragkit.server.routers import health as health
from ragkit.server.routers import jobs as jobs
from ragkit.server.routers import kbs as kbs
from ragkit.server.routers import openai_compat as openai_compat
from ragkit.server.routers import query as query

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

__all__ = ["ROUTERS", "include_routers"]

#: The router of every resource.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    kbs.router,
    documents.router,
    jobs.router,
    query.router,
    openai_compat.router,
)


def include_routers(app: FastAPI, extra: tuple[APIRouter, ...] = ()) -> None:
    """Mount :data:`ROUTERS`, then ``extra`` (routers of other modules)."""
    for router in (*ROUTERS, *extra):
        app.include_router(router)
