"""Documents of a kb: upload (files or JSON text), list, get, replace, delete, sync.

Every write answers ``202 Accepted`` with a job (``Location: /v1/jobs/{id}``) at once;
the job indexes in the background and says how it went, file by file. A request with an
``Idempotency-Key`` seen before on the kb answers the job made the first time (409 if
the key came with other content); the same content sent again while its job is still
queued or running answers that job too, and content already indexed is skipped by the
indexer (its report lists it as unchanged).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile

from ragkit.backends.catalog import ApiKey
from ragkit.errors import ConfigurationError
from ragkit.server.errors import ApiError, not_found
from ragkit.server.ingest import (
    SpooledFile,
    TextItem,
    delete_sources,
    family,
    find_source,
    index_upload,
    run_sync,
    safe_name,
)
from ragkit.server.jobs import TERMINAL, JobContext, JobOutcome
from ragkit.server.routers._common import ReadKey, State, WriteKey, errors
from ragkit.server.state import ServerState
from ragkit.server.wire import (
    ChunkOut,
    DocumentList,
    DocumentOut,
    JobOut,
    SyncRequest,
    TextUpload,
)
from ragkit.types import document_id

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["documents"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="a key of the client's choosing: the same key answers the same job",
    ),
]
_PART = re.compile(r"^(.+)#\d+$")
_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "accepted: the job that does it (see Location)"}
}


def _accept(
    state: ServerState,
    *,
    response: Response,
    key: ApiKey,
    kb: str,
    kind: str,
    request_hash: str,
    idempotency_key: str | None,
    work: Callable[[JobContext], JobOutcome],
    detail: dict[str, Any] | None = None,
    spool: Path | None = None,
) -> JobOut:
    """The job for this write: a reused one (idempotency, a repeat in flight) or a new
    one running ``work``."""
    tenant = key.tenant
    state.kbs.info(tenant, kb)  # 404 for another tenant's kb
    with state.accept_lock:
        reused = None
        if idempotency_key is not None:
            reused = state.catalog.find_job(tenant, kb, idempotency_key)
        else:
            recent_id = state.recent.get((tenant, kb, request_hash))
            if recent_id is not None:
                recent = state.jobs.get(tenant, recent_id)
                if recent is not None and recent.state not in TERMINAL:
                    reused = recent
        if reused is None:
            # The catalog decides between workers: another may take the key first.
            job, new = state.jobs.create(
                tenant,
                kb,
                kind,
                idempotency_key=idempotency_key,
                detail={"request_hash": request_hash, **(detail or {})},
            )
            if new:
                state.recent[(tenant, kb, request_hash)] = job.id
                if len(state.recent) > 10_000:  # only in-flight repeats matter
                    del state.recent[next(iter(state.recent))]
            else:
                reused = job
    if reused is not None:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
        if idempotency_key is not None and reused.detail.get("request_hash") != request_hash:
            raise ApiError(
                409,
                "conflict",
                "this Idempotency-Key was used for a different request on this kb; "
                "use a new key for new content",
            )
        job = state.jobs.get(tenant, reused.id) or reused
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        response.headers["Idempotent-Replayed"] = "true"
        return JobOut.of(job)
    state.jobs.submit(job, work)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


def _spool_files(
    state: ServerState, files: list[UploadFile]
) -> tuple[Path, list[SpooledFile], str]:
    """Copy the uploads to a folder of their own; returns it, the files and their hash."""
    names: list[str] = []
    for upload in files:
        try:
            names.append(safe_name(upload.filename))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"files of one upload need distinct names: {duplicates}")
    folder = Path(os.path.join(state.spool, os.urandom(12).hex()))
    spooled = []
    digest = hashlib.sha256()
    for i, (name, upload) in enumerate(zip(names, files, strict=True)):
        target = folder / str(i) / name
        target.parent.mkdir(parents=True)
        one = hashlib.sha256()
        with target.open("wb") as out:
            while block := upload.file.read(1 << 20):
                one.update(block)
                out.write(block)
        digest.update(f"{name}\0{one.hexdigest()}\0".encode())
        spooled.append(SpooledFile(name, target))
    return folder, spooled, digest.hexdigest()


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigurationError("metadata must be a JSON object") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, (str, int, float, bool)) or v is None for v in data.values()
    ):
        raise ConfigurationError("metadata must be a JSON object of strings, numbers or booleans")
    return data


@router.post(
    "/kbs/{kb}/documents",
    status_code=202,
    summary="Upload files to index",
    responses={**_ACCEPTED, **errors(400, 404, 409, 413)},
)
def upload(
    *,
    kb: str,
    key: WriteKey,
    state: State,
    response: Response,
    files: Annotated[
        list[UploadFile], File(description="the files; each name is its source", min_length=1)
    ],
    metadata: Annotated[
        str | None, Form(description="a JSON object added to every document's metadata")
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    state.kbs.info(key.tenant, kb)
    meta = _metadata(metadata)
    folder, spooled, digest = _spool_files(state, files)
    request_hash = hashlib.sha256(
        f"upload\0{digest}\0{json.dumps(meta, sort_keys=True)}".encode()
    ).hexdigest()
    try:
        rag = state.kbs.rag(key.tenant, kb)
        return _accept(
            state,
            response=response,
            key=key,
            kb=kb,
            kind="upload",
            request_hash=request_hash,
            idempotency_key=idempotency_key,
            work=lambda ctx: index_upload(
                rag, ctx, files=spooled, texts=(), metadata=meta, spool=folder
            ),
            detail={"total": len(spooled), "sources": [f.name for f in spooled]},
            spool=folder,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@router.post(
    "/kbs/{kb}/documents/text",
    status_code=202,
    summary="Index documents sent as JSON text",
    responses={**_ACCEPTED, **errors(400, 404, 409, 413)},
)
def upload_text(
    *,
    kb: str,
    body: TextUpload,
    key: WriteKey,
    state: State,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    sources = [d.source for d in body.documents]
    if len(set(sources)) != len(sources):
        raise ConfigurationError("documents of one request need distinct sources")
    items = [TextItem(d.source, d.text, dict(d.metadata)) for d in body.documents]
    request_hash = hashlib.sha256(
        ("text\0" + body.model_dump_json()).encode("utf-8", "surrogatepass")
    ).hexdigest()
    rag = state.kbs.rag(key.tenant, kb)
    return _accept(
        state,
        response=response,
        key=key,
        kb=kb,
        kind="upload",
        request_hash=request_hash,
        idempotency_key=idempotency_key,
        work=lambda ctx: index_upload(rag, ctx, files=(), texts=items, metadata={}, spool=None),
        detail={"total": len(items), "sources": sources},
    )


@router.get("/kbs/{kb}/documents", summary="The documents of a kb", responses=errors(404))
def list_documents(kb: str, key: ReadKey, state: State) -> DocumentList:
    rag = state.kbs.rag(key.tenant, kb)
    with rag.backend.reading():
        entries = sorted(rag.record.entries().values(), key=lambda e: e.source)
    return DocumentList(
        data=[
            DocumentOut(
                id=document_id(e.source),
                source=e.source,
                content_hash=e.content_hash,
                state="pending" if e.state == "pending" else "done",
                chunk_count=len(e.chunk_ids),
            )
            for e in entries
        ]
    )


@router.get("/kbs/{kb}/documents/{doc_id}", summary="One document", responses=errors(404))
def get_document(
    *,
    kb: str,
    doc_id: str,
    key: ReadKey,
    state: State,
    chunks: Annotated[bool, Query(description="include its chunks, in text order")] = False,
) -> DocumentOut:
    rag = state.kbs.rag(key.tenant, kb)
    source = find_source(rag, doc_id)
    entry = None
    found: list[ChunkOut] | None = None
    if source is not None:
        with rag.backend.reading():
            entry = rag.record.get(source)
            if entry is not None and chunks:
                stored = rag.store.get(list(entry.chunk_ids))
                found = [ChunkOut.of(c) for c in sorted(stored, key=lambda c: c.start)]
    if entry is None:
        raise not_found(f"document {doc_id!r}")
    return DocumentOut(
        id=doc_id,
        source=entry.source,
        content_hash=entry.content_hash,
        state="pending" if entry.state == "pending" else "done",
        chunk_count=len(entry.chunk_ids),
        chunks=found,
    )


def _existing(state: ServerState, key: ApiKey, kb: str, doc_id: str) -> tuple[Any, str]:
    rag = state.kbs.rag(key.tenant, kb)
    source = find_source(rag, doc_id)
    if source is None:
        raise not_found(f"document {doc_id!r}")
    return rag, source


@router.put(
    "/kbs/{kb}/documents/{doc_id}",
    status_code=202,
    summary="Replace a document's content with a file (its source name stays)",
    responses={**_ACCEPTED, **errors(400, 404, 409, 413)},
)
def replace_document(
    *,
    kb: str,
    doc_id: str,
    key: WriteKey,
    state: State,
    response: Response,
    file: Annotated[UploadFile, File(description="the new content")],
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    rag, source = _existing(state, key, kb, doc_id)
    part = _PART.match(source)
    name = part.group(1) if part and family(part.group(1), [source]) else source
    folder, spooled, digest = _spool_files(state, [file])
    spooled = [SpooledFile(name, spooled[0].path)]
    try:
        return _accept(
            state,
            response=response,
            key=key,
            kb=kb,
            kind="replace",
            request_hash=hashlib.sha256(f"replace\0{name}\0{digest}".encode()).hexdigest(),
            idempotency_key=idempotency_key,
            work=lambda ctx: index_upload(
                rag, ctx, files=spooled, texts=(), metadata={}, spool=folder
            ),
            detail={"total": 1, "sources": [name]},
            spool=folder,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@router.delete(
    "/kbs/{kb}/documents/{doc_id}",
    status_code=202,
    summary="Delete a document",
    responses={**_ACCEPTED, **errors(404, 409)},
)
def delete_document(
    *,
    kb: str,
    doc_id: str,
    key: WriteKey,
    state: State,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    rag, source = _existing(state, key, kb, doc_id)
    return _accept(
        state,
        response=response,
        key=key,
        kb=kb,
        kind="delete",
        request_hash=hashlib.sha256(f"delete\0{source}".encode()).hexdigest(),
        idempotency_key=idempotency_key,
        work=lambda ctx: delete_sources(rag, ctx, source),
        detail={"sources": [source]},
    )


@router.post(
    "/kbs/{kb}/sync",
    status_code=202,
    summary="Make the kb match a server-side folder the operator allows",
    responses={**_ACCEPTED, **errors(400, 404, 409)},
)
def sync(
    *,
    kb: str,
    body: SyncRequest,
    key: WriteKey,
    state: State,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    state.kbs.info(key.tenant, kb)
    path = _allowed(state, body.path)
    rag = state.kbs.rag(key.tenant, kb)
    request_hash = hashlib.sha256(
        ("sync\0" + body.model_dump_json()).encode("utf-8", "surrogatepass")
    ).hexdigest()
    return _accept(
        state,
        response=response,
        key=key,
        kb=kb,
        kind="sync",
        request_hash=request_hash,
        idempotency_key=idempotency_key,
        work=lambda ctx: run_sync(rag, ctx, path, body.include, body.exclude),
        detail={"path": str(path)},
    )


def _allowed(state: ServerState, raw: str) -> Path:
    """``raw`` resolved (links followed), if it lies under an allowed sync root."""
    roots = state.settings.sync_roots
    if not roots:
        raise ApiError(403, "forbidden", "this server allows no sync: it has no sync_roots")
    path = Path(raw).resolve()
    for root in roots:
        if path.is_relative_to(root.resolve()):
            if not path.exists():
                raise ConfigurationError(f"{raw} does not exist on the server")
            return path
    raise ApiError(403, "forbidden", f"{raw} is not under a folder this server allows to sync")
