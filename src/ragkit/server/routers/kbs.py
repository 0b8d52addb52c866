"""Knowledge bases: list (read), create and delete (admin), all within the key's tenant."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from ragkit.backends.catalog import check_kb_name
from ragkit.server.errors import ApiError, not_found
from ragkit.server.routers._common import AdminKey, ReadKey, State, errors
from ragkit.server.wire import KbCreate, KbList, KbOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["knowledge bases"])


@router.get("/kbs", summary="The kbs of the key's tenant", responses=errors())
def list_kbs(key: ReadKey, state: State) -> KbList:
    return KbList(data=[KbOut.of(info) for info in state.catalog.list_kbs(key.tenant)])


@router.post("/kbs", status_code=201, summary="Create an empty kb", responses=errors(400, 409))
def create_kb(body: KbCreate, key: AdminKey, state: State) -> KbOut:
    name = check_kb_name(body.name)
    if state.catalog.get_kb(key.tenant, name) is not None:
        raise ApiError(409, "conflict", f"the kb {name!r} exists already")
    return KbOut.of(state.catalog.create_kb(key.tenant, name))


@router.get("/kbs/{kb}", summary="One kb, with what it holds", responses=errors(404))
def get_kb(kb: str, key: ReadKey, state: State) -> KbOut:
    info = state.kbs.info(key.tenant, kb)
    rag = state.kbs.rag(key.tenant, kb)
    stats = rag.stats()
    return KbOut(
        name=info.name,
        tenant=info.tenant,
        created=info.created,
        documents=int(stats["sources"]),
        chunks=int(stats["chunks"]),
    )


@router.delete(
    "/kbs/{kb}",
    status_code=204,
    summary="Delete a kb and everything in it",
    responses=errors(400, 404),
)
async def delete_kb(kb: str, key: AdminKey, state: State) -> Response:
    def delete() -> bool:
        state.kbs.info(key.tenant, kb)
        state.kbs.forget(key.tenant, kb)
        return state.catalog.delete_kb(key.tenant, kb)

    if not await run_in_threadpool(delete):
        raise not_found(f"kb {kb!r}")
    return Response(status_code=204)
