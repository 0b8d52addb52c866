"""The catalog of a PostgreSQL database: every kb of every tenant, API keys and jobs.

``open_catalog("postgresql://user@host/db")`` (or ``ragkit serve --kb`` with that URL)
opens :class:`PostgresCatalog`. What it keeps:

* **Knowledge bases** are the kbs' own schemas, nothing else: a kb ``(tenant, name)``
  exists when the schema ``ragkit_<name>`` (default tenant) or
  ``ragkit_<tenant>__<name>`` holds ragkit's ``schema_version`` table, and its creation
  time is that table's first migration. So a kb made by ``RAG("postgresql://...?kb=x")``
  directly, by an older ragkit, or by another catalog is listed as soon as it exists,
  and a kb whose schema was dropped by hand is gone; there is no second list to drift
  from the schemas. Creating a kb runs the kb's migrations; deleting it drops its
  schema and its jobs in one transaction.
* **API keys and jobs** are rows in the schema ``ragkit_catalog`` (numbered migrations,
  applied under the same advisory lock as a kb's), so every worker of a server sees
  them. Only the SHA-256 of a key's secret is stored (see :mod:`ragkit.backends.keys`).
  One job holds an idempotency key per kb (a unique index). Request-rate buckets live in
  an unlogged table, taken from in one statement on the database's clock.

The name ``catalog`` is therefore not a kb name of the default tenant in PostgreSQL
(``?kb=catalog`` is refused). Connections come from a pool as a kb's do, and
failures of the server become :class:`~ragkit.errors.StoreError` naming the database
without its password.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ragkit.backends.catalog import (
    ApiKey,
    JobRecord,
    KbInfo,
    check_kb_name,
    check_tenant,
    take_token,
)
from ragkit.backends.postgres._db import _first_line
from ragkit.backends.postgres._schema import (
    MIGRATE_LOCK,
    RESERVED_SCHEMA,
    WRITER_LOCK,
    kb_key,
    migrate,
    schema_name,
)
from ragkit.backends.urls import DEFAULT_TENANT, KB_NAME, TENANT_NAME, PostgresSettings, redact
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError, StoreError

__all__ = ["CATALOG_MIGRATIONS", "CATALOG_SCHEMA", "PostgresCatalog"]

logger = logging.getLogger(__name__)

#: The schema of the catalog's own tables.
CATALOG_SCHEMA = RESERVED_SCHEMA
#: The catalog's migrations, numbered from 1 in ``ragkit_catalog.schema_version``.
CATALOG_MIGRATIONS: list[list[str]] = [
    [
        'CREATE TABLE {s}.api_keys (id text COLLATE "C" PRIMARY KEY, tenant text NOT NULL, '
        "scopes text[] NOT NULL, name text NOT NULL, created double precision NOT NULL, "
        "revoked boolean NOT NULL DEFAULT false, secret_hash text NOT NULL)",
        "CREATE INDEX api_keys_tenant ON {s}.api_keys (tenant)",
        "CREATE TABLE {s}.jobs (id text PRIMARY KEY, tenant text NOT NULL, kb text NOT NULL, "
        "idempotency_key text, job jsonb NOT NULL)",
        "CREATE INDEX jobs_idempotency ON {s}.jobs (tenant, kb, idempotency_key)",
    ],
    # 2: one job per idempotency key, enforced by the database (two workers could each
    # make one before). Of duplicates left by that, the oldest keeps the key.
    [
        "UPDATE {s}.jobs SET idempotency_key = NULL WHERE id IN (SELECT id FROM ("
        "SELECT id, row_number() OVER (PARTITION BY tenant, kb, idempotency_key "
        "ORDER BY (job->>'created')::double precision, id) AS n FROM {s}.jobs "
        "WHERE idempotency_key IS NOT NULL) AS d WHERE d.n > 1)",
        "DROP INDEX {s}.jobs_idempotency",
        "CREATE UNIQUE INDEX jobs_idempotency ON {s}.jobs (tenant, kb, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
    ],
    # 3: request-rate buckets every worker shares. UNLOGGED: not worth a WAL write per
    # request; a crash of the server only refills them.
    [
        "CREATE UNLOGGED TABLE {s}.rate_buckets (bucket text PRIMARY KEY, "
        "tokens double precision NOT NULL, at double precision NOT NULL, "
        "allowed boolean NOT NULL)",
    ],
]
# One request from a bucket, in one statement (the row lock orders the workers); the
# database's clock, so workers on machines whose clocks differ agree.
_REFILL = "least(%(burst)s, b.tokens + greatest(0, excluded.at - b.at) * %(rate)s)"
_TAKE = (
    "INSERT INTO {s}.rate_buckets AS b VALUES "
    "(%(bucket)s, %(burst)s - 1, extract(epoch FROM clock_timestamp()), true) "
    f"ON CONFLICT (bucket) DO UPDATE SET allowed = {_REFILL} >= 1, "
    f"tokens = {_REFILL} - CASE WHEN {_REFILL} >= 1 THEN 1 ELSE 0 END, at = excluded.at "
    "RETURNING allowed, tokens"
)

_KEY = "SELECT id, tenant, scopes, name, created, revoked, secret_hash FROM {s}.api_keys"
# Every schema that holds a kb: ragkit_<namespace> with ragkit's schema_version table.
_KB_SCHEMAS = (
    "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
    "WHERE c.relname = 'schema_version' AND c.relkind = 'r' "
    "AND n.nspname LIKE 'ragkit\\_%%' AND n.nspname <> %s ORDER BY n.nspname"
)


class PostgresCatalog:
    """Every kb, key and job of one PostgreSQL database (see the module docstring).

    Example:
        >>> from ragkit.backends import open_catalog
        >>> catalog = open_catalog("postgresql://ragkit@db/ragkit")  # doctest: +SKIP
        >>> info = catalog.create_kb("acme", "handbook")  # doctest: +SKIP
        >>> RAG(info.settings, tenant="acme").add("handbook/")  # doctest: +SKIP

    Args:
        settings: the database (its ``kb`` and ``tenant`` are ignored; pool size,
            ``lock_wait`` and timeouts apply to the catalog and to the kbs' settings).

    Raises:
        StoreError: the server cannot be reached.
        ConfigurationError: the catalog was made by a newer ragkit.
    """

    def __init__(self, settings: PostgresSettings) -> None:
        self._base = settings
        self.location = redact(settings.dsn)
        with self._errors("opening the catalog"):
            with psycopg.connect(settings.dsn, connect_timeout=self._timeout()) as conn:
                _migrate_catalog(conn, self.location)
            self._pool: ConnectionPool[Any] = ConnectionPool(
                settings.dsn,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                kwargs={"connect_timeout": self._timeout()},
                check=ConnectionPool.check_connection,
                timeout=settings.connect_timeout,
                name="ragkit-catalog",
                open=False,
            )
            self._pool.open(wait=False)

    def _timeout(self) -> int:
        return max(1, math.ceil(self._base.connect_timeout))

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"PostgreSQL catalog {self.location}: {what} failed, the server is unreachable "
                f"or restarted ({_first_line(exc)}). Check that it is running; the next call "
                "connects again"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL catalog {self.location}: {what} failed: {_first_line(exc)}"
            ) from exc

    @contextmanager
    def _cursor(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in a transaction of its own (committed when the block ends)."""
        with self._errors(what), self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    # -- knowledge bases ---------------------------------------------------------------

    def settings(self, tenant: str, name: str) -> PostgresSettings:
        check_tenant(tenant)
        check_kb_name(name)
        return dataclasses.replace(self._base, kb=name, tenant=tenant)

    def list_kbs(self, tenant: str | None = None) -> list[KbInfo]:
        for attempt in range(3):
            try:
                with self._cursor("listing the kbs") as cur:
                    cur.execute(_KB_SCHEMAS, (CATALOG_SCHEMA,))
                    found = [
                        (owner, name, schema)
                        for (schema,) in cur.fetchall()
                        if (parsed := _parse_schema(schema)) is not None
                        for owner, name in [parsed]
                        if tenant in (None, owner)
                    ]
                    created = _created(cur, [schema for _, _, schema in found])
            except StoreError as exc:
                if not _dropped(exc) or attempt == 2:
                    raise
                continue  # a kb dropped between the two queries: list again
            infos = [
                KbInfo(name, owner, self.settings(owner, name), created[schema])
                for owner, name, schema in found
            ]
            return sorted(infos, key=lambda kb: (kb.tenant, kb.name))
        raise AssertionError("unreachable")  # pragma: no cover

    def get_kb(self, tenant: str, name: str) -> KbInfo | None:
        schema = _schema_of(tenant, name)
        if schema is None:
            return None
        try:
            with self._cursor("looking up a kb") as cur:
                if not _exists(cur, schema):
                    return None
                created = _created(cur, [schema])[schema]
        except StoreError as exc:
            if _dropped(exc):
                return None  # dropped between the two queries
            raise
        return KbInfo(name, tenant, self.settings(tenant, name), created)

    def create_kb(self, tenant: str, name: str) -> KbInfo:
        """Create the kb's schema and tables (its migrations), refused when it exists."""
        settings = self.settings(tenant, name)
        schema = schema_name(settings.namespace)
        with self._errors("creating a kb"), self._pool.connection() as conn, conn.transaction():
            # The lock every kb migration takes: nobody creates this schema meanwhile.
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (MIGRATE_LOCK,))
            with conn.cursor() as cur:
                if _exists(cur, schema):
                    raise ConfigurationError(f"the kb {name!r} exists already")
            migrate(conn, schema, settings.location)
            with conn.cursor() as cur:
                created = _created(cur, [schema])[schema]
        logger.info("created the kb %s", settings.location)
        return KbInfo(name, tenant, settings, created)

    def delete_kb(self, tenant: str, name: str) -> bool:
        """Drop the kb's schema (everything in it) and its jobs, in one transaction.

        Waits up to ``lock_wait`` seconds for a writer of the kb (an add or sync in any
        process) to finish, and for readers in a transaction on its tables.

        Raises:
            KnowledgeBaseLockedError: a writer or reader still holds the kb after the wait.
        """
        schema = _schema_of(tenant, name)
        if schema is None:
            return False
        namespace = schema.removeprefix("ragkit_")
        wait = f"{max(1, round(self._base.lock_wait * 1000))}ms"
        with self._errors("deleting a kb"), self._pool.connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT set_config('lock_timeout', %s, true)", (wait,))
                    # The writers' lock first (it may wait), then the migrations' lock.
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                 (WRITER_LOCK, kb_key(namespace)))  # fmt: skip
                    conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (MIGRATE_LOCK,))
                    with conn.cursor() as cur:
                        if not _exists(cur, schema):
                            return False
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
                    conn.execute(
                        f"DELETE FROM {CATALOG_SCHEMA}.jobs WHERE tenant = %s AND kb = %s",
                        (tenant, name),
                    )
            except psycopg.errors.LockNotAvailable as exc:
                raise KnowledgeBaseLockedError(
                    f"the kb {name!r} of {tenant!r} is being written or read for longer than "
                    f"{self._base.lock_wait:g} s; try deleting it again when that is done"
                ) from exc
        logger.info("deleted the kb %s", self.settings(tenant, name).location)
        return True

    # -- keys --------------------------------------------------------------------------

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        with self._cursor("saving an API key") as cur:
            cur.execute(
                f"INSERT INTO {CATALOG_SCHEMA}.api_keys VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (key.id, key.tenant, list(key.scopes), key.name, key.created, key.revoked,
                 secret_hash),
            )  # fmt: skip

    def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self._cursor("looking up an API key") as cur:
            cur.execute(_KEY.format(s=CATALOG_SCHEMA) + " WHERE id = %s", (key_id,))
            row = cur.fetchone()
        return None if row is None else (_key(row), str(row[6]))

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql, args = _KEY.format(s=CATALOG_SCHEMA), ()  # type: tuple[str, tuple[str, ...]]
        if tenant is not None:
            sql, args = sql + " WHERE tenant = %s", (tenant,)
        with self._cursor("listing API keys") as cur:
            cur.execute(sql + " ORDER BY created DESC, id", args)
            rows = cur.fetchall()
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._cursor("revoking an API key") as cur:
            cur.execute(
                f"UPDATE {CATALOG_SCHEMA}.api_keys SET revoked = true WHERE id = %s", (key_id,)
            )
            return cur.rowcount > 0

    # -- request rates -----------------------------------------------------------------

    def take_request(self, bucket: str, per_minute: float, burst: float) -> float:
        rate = per_minute / 60.0
        with self._cursor("counting a request") as cur:
            cur.execute(
                _TAKE.format(s=CATALOG_SCHEMA),
                {"bucket": bucket, "burst": burst, "rate": rate},
            )
            allowed, tokens = cur.fetchone()  # type: ignore[misc]  # always one row
        return 0.0 if allowed else take_token(tokens, 0.0, per_minute, burst)[1]

    # -- jobs --------------------------------------------------------------------------

    def add_job(self, job: JobRecord) -> JobRecord:
        with self._cursor("adding a job") as cur:
            # The unique index on (tenant, kb, idempotency_key) decides between workers.
            cur.execute(
                f"INSERT INTO {CATALOG_SCHEMA}.jobs VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant, kb, idempotency_key) WHERE idempotency_key IS NOT NULL "
                "DO NOTHING",
                _job_row(job),
            )
            if cur.rowcount == 1:
                return job
        found = self.find_job(job.tenant, job.kb, job.idempotency_key or "")
        if found is None:  # the holder was deleted in between (its kb dropped)
            raise StoreError(
                f"PostgreSQL catalog {self.location}: the job holding this idempotency key "
                "was deleted while adding a new one; send the request again"
            )
        return found

    def save_job(self, job: JobRecord) -> None:
        # A job's tenant, kb and key never change: an update leaves them (and the index).
        with self._cursor("saving a job") as cur:
            cur.execute(
                f"INSERT INTO {CATALOG_SCHEMA}.jobs VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET job = excluded.job",
                _job_row(job),
            )

    def get_job(self, tenant: str, job_id: str) -> JobRecord | None:
        with self._cursor("reading a job") as cur:
            cur.execute(
                f"SELECT job FROM {CATALOG_SCHEMA}.jobs WHERE id = %s AND tenant = %s",
                (job_id, tenant),
            )
            row = cur.fetchone()
        return None if row is None else JobRecord(**row[0])

    def find_job(self, tenant: str, kb: str, idempotency_key: str) -> JobRecord | None:
        with self._cursor("looking up a job") as cur:
            cur.execute(
                f"SELECT job FROM {CATALOG_SCHEMA}.jobs WHERE tenant = %s AND kb = %s "
                "AND idempotency_key = %s ORDER BY id LIMIT 1",
                (tenant, kb, idempotency_key),
            )
            row = cur.fetchone()
        return None if row is None else JobRecord(**row[0])

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    def __enter__(self) -> PostgresCatalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.location!r})"


def _job_row(job: JobRecord) -> tuple[Any, ...]:
    return (job.id, job.tenant, job.kb, job.idempotency_key, Jsonb(dataclasses.asdict(job)))


def _migrate_catalog(conn: psycopg.Connection[Any], location: str) -> None:
    """Create or upgrade the catalog's tables, in one transaction under the migrations'
    advisory lock (the lock a kb's migrations take)."""
    s = CATALOG_SCHEMA
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (MIGRATE_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {s}.schema_version")
        current = int(row.fetchone()[0])  # type: ignore[index]
        if current > len(CATALOG_MIGRATIONS):
            raise ConfigurationError(
                f"the catalog in {location} was made by a newer ragkit (schema version "
                f"{current}; this one knows up to {len(CATALOG_MIGRATIONS)}); upgrade ragkit"
            )
        for version, steps in enumerate(CATALOG_MIGRATIONS[current:], current + 1):
            for step in steps:
                conn.execute(step.format(s=s))
            conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (version,))


def _schema_of(tenant: str, name: str) -> str | None:
    """The schema of the kb ``(tenant, name)``; None when either name is not valid (no
    such kb can exist, and nothing unchecked reaches SQL)."""
    if not TENANT_NAME.match(tenant) or not KB_NAME.match(name) or "__" in name:
        return None
    namespace = name if tenant == DEFAULT_TENANT else f"{tenant}__{name}"
    if f"ragkit_{namespace}" == CATALOG_SCHEMA:
        return None
    return schema_name(namespace)


def _parse_schema(schema: str) -> tuple[str, str] | None:
    """``(tenant, name)`` of a kb's schema, or None when the schema is not a kb's."""
    namespace = schema.removeprefix("ragkit_")
    tenant, sep, name = namespace.partition("__")
    if not sep:
        tenant, name = DEFAULT_TENANT, namespace
    if _schema_of(tenant, name) != schema:
        return None
    return tenant, name


def _dropped(exc: StoreError) -> bool:
    return isinstance(exc.__cause__, psycopg.errors.UndefinedTable)


def _exists(cur: psycopg.Cursor[Any], schema: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.schema_version",))
    row = cur.fetchone()
    return bool(row and row[0])


def _created(cur: psycopg.Cursor[Any], schemas: list[str]) -> dict[str, float]:
    """When each kb was created: its first migration (Unix time)."""
    if not schemas:
        return {}
    first = "coalesce(extract(epoch FROM min(applied_at)), 0)::float8"
    parts = [f"SELECT %s, {first} FROM {s}.schema_version" for s in schemas]
    cur.execute(" UNION ALL ".join(parts), schemas)
    return {str(schema): float(created) for schema, created in cur.fetchall()}


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, scopes, name, created, revoked, _ = row
    return ApiKey(str(key_id), str(tenant), tuple(scopes), str(name), float(created),
                  bool(revoked))  # fmt: skip
