"""The knowledge bases of one engine, who owns them, API keys and ingest jobs.

A :class:`Catalog` sits above :class:`~ragkit.backends.base.KnowledgeBaseBackend`: it
lists, creates and deletes the kbs of one engine (a root folder, a PostgreSQL database,
a Milvus server) and keeps what a server shares between its workers: API keys (hashed)
and ingest jobs. Every kb belongs to one tenant, and a kb's identity is the pair
``(tenant, name)``: two tenants may each have a kb ``docs``, stored apart (another
folder, schema or collection), so a tenant can only ever reach its own kbs, by
construction rather than by hard-to-guess ids. Catalog methods that take a tenant
answer for that tenant's kbs only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ragkit.backends.urls import DEFAULT_TENANT, KB_NAME, TENANT_NAME, Settings
from ragkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_TENANT",
    "JOB_STATES",
    "SCOPES",
    "TENANT_NAME",
    "ApiKey",
    "Catalog",
    "JobRecord",
    "KbInfo",
    "RateBuckets",
    "check_kb_name",
    "check_tenant",
    "take_token",
]

#: What an API key may be allowed: read (search, ask, get), write (upload, delete,
#: sync, jobs), admin (create and delete kbs).
SCOPES = ("read", "write", "admin")
Scope = Literal["read", "write", "admin"]
JOB_STATES = ("queued", "running", "succeeded", "failed", "partial", "canceled")
JobState = Literal["queued", "running", "succeeded", "failed", "partial", "canceled"]


def check_tenant(tenant: str) -> str:
    """``tenant``, or :class:`ConfigurationError` when it is not a valid tenant name."""
    if not TENANT_NAME.match(tenant):
        raise ConfigurationError(
            f"tenant {tenant!r} must be 1 to 20 lowercase letters or digits, starting with a letter"
        )
    return tenant


def check_kb_name(name: str) -> str:
    """``name``, or :class:`ConfigurationError` when it is not a valid kb name."""
    if not KB_NAME.match(name) or "__" in name:
        raise ConfigurationError(
            f"kb name {name!r} must be 1 to 40 lowercase letters, digits or single "
            "underscores, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class KbInfo:
    """One knowledge base of a catalog.

    Attributes:
        name: its name, unique within its tenant.
        tenant: who owns it.
        settings: where it lives; ``open_backend(settings)`` or ``RAG(settings)`` opens it.
        created: when it was created (Unix time).
    """

    name: str
    tenant: str
    settings: Settings
    created: float


@dataclass(frozen=True)
class ApiKey:
    """An API key as the catalog keeps it: never the secret, only its hash.

    Attributes:
        id: the key's public id (``rk_<id>_<secret>`` is the whole key).
        tenant: the tenant whose kbs the key reaches.
        scopes: some of :data:`SCOPES`.
        name: a label for people.
        created: Unix time.
        revoked: a revoked key authenticates nothing.
    """

    id: str
    tenant: str
    scopes: tuple[str, ...]
    name: str = ""
    created: float = 0.0
    revoked: bool = False


@dataclass(frozen=True)
class JobRecord:
    """An ingest job, as every worker of a server sees it.

    Attributes:
        id: the job id.
        tenant, kb: whose kb it writes.
        state: one of :data:`JOB_STATES`.
        kind: ``"upload"``, ``"replace"``, ``"delete"`` or ``"sync"``.
        created, updated: Unix times.
        idempotency_key: the client's ``Idempotency-Key``, when it sent one.
        detail: JSON-ready progress and results (files done and total, the
            :class:`~ragkit.types.IndexReport` as a dict, per-file errors).
        worker: the worker running it; ``heartbeat`` its last sign of life (a running
            job whose heartbeat is old lost its worker).
    """

    id: str
    tenant: str
    kb: str
    state: str
    kind: str
    created: float
    updated: float
    idempotency_key: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    worker: str = ""
    heartbeat: float = 0.0


@runtime_checkable
class Catalog(Protocol):
    """The kbs of one engine, their tenants, API keys and jobs (see the module docstring).

    Attributes:
        location: the engine's folder or URL without password, for messages.
    """

    location: str

    def settings(self, tenant: str, name: str) -> Settings:
        """Where the kb ``(tenant, name)`` lives (whether it exists or not)."""
        ...

    def list_kbs(self, tenant: str | None = None) -> list[KbInfo]:
        """The kbs of ``tenant`` (every tenant's with None), by name."""
        ...

    def get_kb(self, tenant: str, name: str) -> KbInfo | None:
        """The kb ``name`` of ``tenant``; None when that tenant has none of that name."""
        ...

    def create_kb(self, tenant: str, name: str) -> KbInfo:
        """Register a new, empty kb; :class:`ConfigurationError` when it exists."""
        ...

    def delete_kb(self, tenant: str, name: str) -> bool:
        """Drop the kb and everything in it; False when there was none."""
        ...

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        """Keep a new key (its id must be new) with the hash of its secret."""
        ...

    def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this id and its secret's hash, revoked or not; None if unknown."""
        ...

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """The keys of ``tenant`` (all with None), newest first."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when no key has that id."""
        ...

    def add_job(self, job: JobRecord) -> JobRecord:
        """Insert a new job and return it as stored (a catalog may stamp ``created``
        with the time of the save); when the job has an idempotency key that a job of
        the same tenant and kb holds already, write nothing and return that job.

        Atomic across processes: of several workers adding a job for one key at once,
        exactly one job is kept and all of them get it back.
        """
        ...

    def save_job(self, job: JobRecord) -> None:
        """Insert or replace a job by id (a new job with an idempotency key: :meth:`add_job`)."""
        ...

    def get_job(self, tenant: str, job_id: str) -> JobRecord | None:
        """The job of ``tenant`` with this id (None for another tenant's)."""
        ...

    def find_job(self, tenant: str, kb: str, idempotency_key: str) -> JobRecord | None:
        """The job made for this ``Idempotency-Key`` on this kb, if any."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class RateBuckets(Protocol):
    """A catalog that also keeps request-rate buckets, shared by every worker that opens
    it (optional: a server counts per worker process with a catalog without them)."""

    def take_request(self, bucket: str, per_minute: float, burst: float) -> float:
        """Take one request from the token bucket ``bucket`` (``burst`` requests at once,
        refilled at ``per_minute``): 0.0 when allowed, else the seconds until one is."""
        ...


def take_token(
    tokens: float, elapsed: float, per_minute: float, burst: float
) -> tuple[float, float]:
    """One request from a token bucket that held ``tokens`` ``elapsed`` seconds ago: the
    tokens it holds now and 0.0 when the request is allowed, else the tokens and the
    whole seconds (at least 1) until a request is."""
    rate = per_minute / 60.0
    tokens = min(burst, tokens + max(0.0, elapsed) * rate)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, float(max(1, math.ceil((1.0 - tokens) / rate)))
