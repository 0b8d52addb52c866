"""The catalog of a Milvus server: every kb of every tenant, API keys and jobs.

``open_catalog("milvus://host:19530")`` (or ``ragkit serve --kb`` with that URL) opens
:class:`MilvusCatalog`. What it keeps:

* **Knowledge bases** are their record collections: a kb ``(tenant, name)`` exists
  when the collection ``<namespace>_record`` does (``<name>_record``, or
  ``<tenant>__<name>_record`` for a tenant other than ``default``) and ragkit made it.
  So a kb made by ``RAG("milvus://...?collection=x")`` directly is listed as soon as
  it is opened. Milvus Lite does not tell when a collection was made, so the creation
  time lives in ``ragkit_catalog_kbs``; a kb made outside the catalog gets the time
  the catalog first saw it.
* **API keys** are rows of ``ragkit_catalog_keys`` (only the SHA-256 of a secret, see
  :mod:`ragkit.backends.keys`), **jobs** rows of ``ragkit_catalog_jobs``: every worker
  of a server sees them. Milvus only keeps collections with a vector field, so each
  row carries a constant two-dimensional vector nothing searches, as the record's do;
  every read is strongly consistent.

**What is not atomic.** Milvus has no transactions, so:

* ``create_kb`` checks that the kb does not exist, then creates it: two processes
  creating one kb at the same moment may both succeed (one kb results, empty).
* ``delete_kb`` takes the kb's writers' lease (waiting up to ``lock_wait`` for a
  writer), drops the chunk collection, deletes the kb's jobs and its registry row,
  gives the lease back and drops the record collection, in that order. A delete cut
  short leaves the record collection, so the kb is still listed and deleting it again
  finishes the job; the chunks are never left behind a kb that looks gone. A writer
  that takes the lease between the last two steps fails on its next write.
* A job is saved as a new version of its rows, then older versions are deleted;
  readers take the newest complete version, so a save cut short leaves the previous
  state whole, and a job whose JSON exceeds one VARCHAR (65,535 bytes) spans rows.
* ``add_job`` with an idempotency key looks the key up, saves the job stamped with the
  time of its save, waits (0.2 s, or twice as long as the save took) and looks again,
  twice:
  when workers added jobs for the key meanwhile, the one saved first (by that time,
  then id) holds it and the others delete their own. As with the writers' lease, this
  is not a transaction: a save that lands more than that wait after an earlier-stamped
  one began (a stalled server) can still make two jobs, and the stamps compare the
  workers' clocks.
* It keeps no request-rate buckets (there is no atomic update to take from one): a
  server on Milvus counts each key's rate per worker process.
* Revoking a key reads and rewrites its row (no partial update): fine, as nothing
  else rewrites a key.

Default-tenant kb names starting with ``ragkit_catalog_`` are refused: those names
belong to the catalog.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import defaultdict
from typing import Any

from ragkit.backends.catalog import ApiKey, JobRecord, KbInfo, check_kb_name, check_tenant
from ragkit.backends.milvus._chunks import MAX_TEXT, create_collection
from ragkit.backends.milvus._client import Connection, batched, pymilvus
from ragkit.backends.milvus._filters import quote
from ragkit.backends.milvus._lease import SETTLE, Lease
from ragkit.backends.milvus._record import CATALOG_PREFIX, RECORD_FIELDS, record_collection
from ragkit.backends.urls import DEFAULT_TENANT, KB_NAME, TENANT_NAME, MilvusSettings
from ragkit.errors import ConfigurationError, StoreError

__all__ = ["JOBS", "KBS", "KEYS", "RESERVED_PREFIX", "MilvusCatalog"]

logger = logging.getLogger(__name__)

#: Collections of the catalog; no kb of the default tenant may take their names.
RESERVED_PREFIX = CATALOG_PREFIX
KBS = RESERVED_PREFIX + "kbs"
KEYS = RESERVED_PREFIX + "keys"
JOBS = RESERVED_PREFIX + "jobs"
_RECORD = "_record"
_DUMMY = [1.0, 0.0]
_PIECE = 60_000  # characters of ASCII JSON per job row, below the VARCHAR limit
_KB_FIELDS = ["key", "tenant", "name", "created"]
_KEY_FIELDS = ["id", "tenant", "scopes", "name", "created", "revoked", "secret_hash"]
_JOB_FIELDS = ["id", "seq", "part", "parts", "data"]


class MilvusCatalog:
    """Every kb, key and job of one Milvus server (see the module docstring).

    Example:
        >>> from ragkit.backends import open_catalog
        >>> catalog = open_catalog("milvus://127.0.0.1:19530")  # doctest: +SKIP
        >>> info = catalog.create_kb("acme", "handbook")  # doctest: +SKIP
        >>> RAG(info.settings, tenant="acme").add("handbook/")  # doctest: +SKIP

    Args:
        settings: the server (its ``collection`` and ``tenant`` are ignored; the token
            and ``lock_wait`` apply to the catalog and to the kbs' settings).

    Raises:
        StoreError: the server cannot be reached or refuses the request.
        ConfigurationError: a catalog collection exists with another layout.
    """

    def __init__(self, settings: MilvusSettings) -> None:
        self._base = settings
        self._conn = Connection(settings)
        self.location = self._conn.location.split("?", 1)[0]
        try:
            self._collections()
        except BaseException:
            self._conn.close()
            raise

    def _collections(self) -> None:
        """Create the catalog's collections if missing (and check existing ones)."""
        data_type = pymilvus().DataType
        text = (data_type.VARCHAR, {"max_length": MAX_TEXT})
        layouts: dict[str, list[tuple[str, Any, dict[str, Any]]]] = {
            KBS: [
                ("key", data_type.VARCHAR, {"max_length": 128, "is_primary": True}),
                ("tenant", data_type.VARCHAR, {"max_length": 64}),
                ("name", data_type.VARCHAR, {"max_length": 64}),
                ("created", data_type.DOUBLE, {}),
            ],
            KEYS: [
                ("id", data_type.VARCHAR, {"max_length": 64, "is_primary": True}),
                ("tenant", data_type.VARCHAR, {"max_length": 64}),
                ("scopes", data_type.VARCHAR, {"max_length": 128}),
                ("name", *text),
                ("created", data_type.DOUBLE, {}),
                ("revoked", data_type.BOOL, {}),
                ("secret_hash", data_type.VARCHAR, {"max_length": 128}),
            ],
            JOBS: [
                ("key", data_type.VARCHAR, {"max_length": 512, "is_primary": True}),
                ("id", data_type.VARCHAR, {"max_length": 256}),
                ("tenant", data_type.VARCHAR, {"max_length": 64}),
                ("kb", data_type.VARCHAR, {"max_length": 64}),
                ("idempotency_key", data_type.VARCHAR, {"max_length": 1024}),
                ("seq", data_type.INT64, {}),
                ("part", data_type.INT64, {}),
                ("parts", data_type.INT64, {}),
                ("data", *text),
            ],
        }
        for name, layout in layouts.items():
            if self._conn.has_collection(name):
                self._check(name, [field for field, _, _ in layout])
                continue
            schema = self._conn.client.create_schema(auto_id=False, enable_dynamic_field=False)
            for field, kind, options in layout:
                schema.add_field(field, kind, **options)
            schema.add_field("vector", data_type.FLOAT_VECTOR, dim=len(_DUMMY))
            index = self._conn.client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="L2")
            try:
                create_collection(self._conn, name, schema, index)
            except StoreError:
                if not self._conn.has_collection(name):
                    raise
                # Another process made it meanwhile.
                self._check(name, [field for field, _, _ in layout])

    def _check(self, name: str, fields: list[str]) -> None:
        info = self._conn.call(f"describing {name!r}", "describe_collection", name)
        found = {f["name"] for f in info.get("fields", [])}
        if not set(fields) <= found:
            raise ConfigurationError(
                f"The Milvus collection {name!r} at {self.location} is not ragkit's catalog "
                f"(its fields are {', '.join(sorted(found))}); drop or rename it"
            )
        self._conn.call(f"loading {name!r}", "load_collection", name)

    def _query(self, what: str, collection: str, expr: str, fields: list[str]) -> list[Any]:
        return self._conn.query_all(what, collection, expr, fields)

    # -- knowledge bases ---------------------------------------------------------------

    def settings(self, tenant: str, name: str) -> MilvusSettings:
        check_tenant(tenant)
        check_kb_name(name)
        if tenant == DEFAULT_TENANT and name.startswith(RESERVED_PREFIX):
            raise ConfigurationError(
                f"the kb name {name!r} is reserved in Milvus: names starting with "
                f"{RESERVED_PREFIX} belong to ragkit's catalog; choose another name"
            )
        return dataclasses.replace(self._base, collection=name, tenant=tenant)

    def list_kbs(self, tenant: str | None = None) -> list[KbInfo]:
        names = self._conn.call("listing the collections", "list_collections")
        found = [
            parsed
            for collection in names
            if collection.endswith(_RECORD)
            and (parsed := _parse_namespace(collection[: -len(_RECORD)])) is not None
            and tenant in (None, parsed[0])
        ]
        expr = 'key != ""' if tenant is None else f"tenant == {quote(tenant)}"
        rows = self._query("listing the kbs", KBS, expr, _KB_FIELDS)
        created = {(r["tenant"], r["name"]): float(r["created"]) for r in rows}
        infos = []
        for owner, name in found:
            when = created.get((owner, name))
            if when is None:
                when = self._adopt(owner, name)
                if when is None:
                    continue  # a collection named like a record that ragkit did not make
            infos.append(KbInfo(name, owner, self.settings(owner, name), when))
        return sorted(infos, key=lambda kb: (kb.tenant, kb.name))

    def get_kb(self, tenant: str, name: str) -> KbInfo | None:
        namespace = _namespace(tenant, name)
        if namespace is None or not self._conn.has_collection(namespace + _RECORD):
            return None
        rows = self._query("looking up a kb", KBS, f"key == {quote(_kb_key(tenant, name))}",
                           _KB_FIELDS)  # fmt: skip
        when = float(rows[0]["created"]) if rows else self._adopt(tenant, name)
        if when is None:
            return None
        return KbInfo(name, tenant, self.settings(tenant, name), when)

    def _adopt(self, tenant: str, name: str) -> float | None:
        """Register a kb made without the catalog (now is its creation time, as far as
        the catalog knows); None when its record collection is not ragkit's."""
        namespace = _namespace(tenant, name)
        assert namespace is not None
        record = namespace + _RECORD
        info = self._conn.call(f"describing {record!r}", "describe_collection", record)
        if not set(RECORD_FIELDS) <= {f["name"] for f in info.get("fields", [])}:
            return None
        created = time.time()
        self._register(tenant, name, created)
        return created

    def _register(self, tenant: str, name: str, created: float) -> None:
        row = {"key": _kb_key(tenant, name), "tenant": tenant, "name": name,
               "created": created, "vector": _DUMMY}  # fmt: skip
        self._conn.call("registering a kb", "upsert", KBS, [row])

    def create_kb(self, tenant: str, name: str) -> KbInfo:
        """Register the kb and create its record collection (not atomic: see the module
        docstring); refused when it exists."""
        settings = self.settings(tenant, name)
        record = settings.namespace + _RECORD
        if self._conn.has_collection(record):
            raise ConfigurationError(f"the kb {name!r} exists already")
        created = time.time()
        # The registry row first: without the record collection it is no kb.
        self._register(tenant, name, created)
        record_collection(self._conn, record)
        logger.info("created the kb %s", settings.location)
        return KbInfo(name, tenant, settings, created)

    def delete_kb(self, tenant: str, name: str) -> bool:
        """Drop the kb's collections, its jobs and its registry row, in the order the
        module docstring gives; waits up to ``lock_wait`` for the kb's writer.

        Raises:
            KnowledgeBaseLockedError: a writer still holds the kb's lease after the wait.
        """
        namespace = _namespace(tenant, name)
        if namespace is None or not self._conn.has_collection(namespace + _RECORD):
            return False
        record = namespace + _RECORD
        with Lease(self._conn, record, self._base.lock_wait).hold():
            if self._conn.has_collection(namespace):
                self._conn.call("dropping the kb's chunks", "drop_collection", namespace)
            expr = f"tenant == {quote(tenant)} and kb == {quote(name)}"
            self._conn.call("deleting the kb's jobs", "delete", JOBS, filter=expr)
            self._conn.call("unregistering the kb", "delete", KBS,
                            filter=f"key == {quote(_kb_key(tenant, name))}")  # fmt: skip
        self._conn.call("dropping the kb's record", "drop_collection", record)
        logger.info("deleted the kb %s", self.settings(tenant, name).location)
        return True

    # -- keys --------------------------------------------------------------------------

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        if self.find_key(key.id) is not None:
            raise ConfigurationError(f"an API key with the id {key.id} exists already")
        self._put_key(key, secret_hash)

    def _put_key(self, key: ApiKey, secret_hash: str) -> None:
        row = {"id": key.id, "tenant": key.tenant, "scopes": ",".join(key.scopes),
               "name": key.name, "created": key.created, "revoked": key.revoked,
               "secret_hash": secret_hash, "vector": _DUMMY}  # fmt: skip
        self._conn.call("saving an API key", "upsert", KEYS, [row])

    def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        rows = self._query("looking up an API key", KEYS, f"id == {quote(key_id)}", _KEY_FIELDS)
        return None if not rows else (_key(rows[0]), str(rows[0]["secret_hash"]))

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        expr = 'id != ""' if tenant is None else f"tenant == {quote(tenant)}"
        rows = self._query("listing API keys", KEYS, expr, _KEY_FIELDS)
        keys = [_key(r) for r in rows]
        return sorted(keys, key=lambda k: (-k.created, k.id))

    def revoke_key(self, key_id: str) -> bool:
        found = self.find_key(key_id)
        if found is None:
            return False
        key, secret_hash = found
        self._put_key(dataclasses.replace(key, revoked=True), secret_hash)
        return True

    # -- jobs --------------------------------------------------------------------------

    def add_job(self, job: JobRecord) -> JobRecord:
        """Save the job unless its idempotency key is taken (see the module docstring)."""
        if not job.idempotency_key:
            self.save_job(job)
            return job
        found = self.find_job(job.tenant, job.kb, job.idempotency_key)
        if found is not None:
            return found
        # The job made first holds the key, "first" by the time of its save: a worker
        # that saves after another's save has landed sees that job, and an earlier one.
        mine = dataclasses.replace(job, created=time.time())
        began = time.monotonic()
        self.save_job(mine)
        # Saves that began before ours land within twice as long as ours took; look
        # twice, so that one slower still is seen too.
        wait = max(SETTLE, 2 * (time.monotonic() - began))
        for _ in range(2):
            time.sleep(wait)
            first = self.find_job(job.tenant, job.kb, job.idempotency_key)
            if first is not None and first.id != mine.id:
                self._conn.call("adding a job", "delete", JOBS, filter=f"id == {quote(mine.id)}")
                return first
        return mine

    def save_job(self, job: JobRecord) -> None:
        """Write the job as a new version of its rows, then delete older versions."""
        text = json.dumps(dataclasses.asdict(job), ensure_ascii=True, sort_keys=True,
                          separators=(",", ":"))  # fmt: skip
        pieces = [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)] or [""]
        seq = time.time_ns()
        rows = [
            {"key": f"{job.id}:{seq}:{i}", "id": job.id, "tenant": job.tenant, "kb": job.kb,
             "idempotency_key": job.idempotency_key or "", "seq": seq, "part": i,
             "parts": len(pieces), "data": piece, "vector": _DUMMY}
            for i, piece in enumerate(pieces)
        ]  # fmt: skip
        for batch in batched(rows, 50):
            self._conn.call("saving a job", "upsert", JOBS, batch)
        # Only older versions: a newer one another worker saved meanwhile stays.
        self._conn.call("saving a job", "delete", JOBS,
                        filter=f"id == {quote(job.id)} and seq < {seq}")  # fmt: skip

    def get_job(self, tenant: str, job_id: str) -> JobRecord | None:
        expr = f"id == {quote(job_id)} and tenant == {quote(tenant)}"
        return _newest(self._query("reading a job", JOBS, expr, _JOB_FIELDS)).get(job_id)

    def find_job(self, tenant: str, kb: str, idempotency_key: str) -> JobRecord | None:
        if not idempotency_key:
            return None
        expr = (f"tenant == {quote(tenant)} and kb == {quote(kb)} and "
                f"idempotency_key == {quote(idempotency_key)}")  # fmt: skip
        jobs = _newest(self._query("looking up a job", JOBS, expr, _JOB_FIELDS))
        # The first one made holds the key: every worker agrees on which that is.
        return min(jobs.values(), key=lambda j: (j.created, j.id)) if jobs else None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> MilvusCatalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MilvusCatalog({self.location!r})"


def _namespace(tenant: str, name: str) -> str | None:
    """The kb's namespace, or None when no such kb can exist (invalid or reserved names:
    nothing unchecked reaches a Milvus expression)."""
    if not TENANT_NAME.match(tenant) or not KB_NAME.match(name) or "__" in name:
        return None
    if tenant == DEFAULT_TENANT:
        return None if name.startswith(RESERVED_PREFIX) else name
    return f"{tenant}__{name}"


def _parse_namespace(namespace: str) -> tuple[str, str] | None:
    """``(tenant, name)`` of a kb's namespace, or None when it is not one."""
    tenant, sep, name = namespace.partition("__")
    if not sep:
        tenant, name = DEFAULT_TENANT, namespace
    return (tenant, name) if _namespace(tenant, name) == namespace else None


def _kb_key(tenant: str, name: str) -> str:
    return f"{tenant}/{name}"


def _key(row: dict[str, Any]) -> ApiKey:
    scopes = tuple(s for s in str(row["scopes"]).split(",") if s)
    return ApiKey(str(row["id"]), str(row["tenant"]), scopes, str(row["name"]),
                  float(row["created"]), bool(row["revoked"]))  # fmt: skip


def _newest(rows: list[dict[str, Any]]) -> dict[str, JobRecord]:
    """Each job's newest complete version (a save cut short leaves an incomplete one)."""
    versions: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        versions[(r["id"], int(r["seq"]))].append(r)
    newest: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    for (job_id, seq), parts in versions.items():
        if len(parts) != parts[0]["parts"]:
            continue
        if job_id not in newest or seq > newest[job_id][0]:
            newest[job_id] = (seq, parts)
    jobs = {}
    for job_id, (_, parts) in newest.items():
        text = "".join(p["data"] for p in sorted(parts, key=lambda p: p["part"]))
        try:
            jobs[job_id] = JobRecord(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"the job {job_id} in the Milvus collection {JOBS!r} is corrupt ({exc})"
            ) from exc
    return jobs
