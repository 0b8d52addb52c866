"""The catalog of a root folder: kbs in ``ROOT/<tenant>/<name>/``, keys and jobs in SQLite.

``ragkit serve --kb DIR`` serves a folder two ways. When ``DIR`` is itself a kb (it has
a manifest, ``ragkit.json``), it is the one kb of the catalog, named after the folder
and owned by the tenant its manifest records; kbs cannot be created or deleted. Else
``DIR`` is a root: each kb lives in ``DIR/<tenant>/<name>/``, registered in
``DIR/catalog.sqlite`` when made through the catalog, and found by its manifest when
written there directly (``ragkit ingest --kb DIR/acme/handbook``). Either way, API keys
(hashed), jobs and request-rate buckets are kept in ``catalog.sqlite`` beside the kbs,
so every process serving the folder sees them.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragkit.backends.catalog import (
    ApiKey,
    JobRecord,
    KbInfo,
    check_kb_name,
    check_tenant,
    take_token,
)
from ragkit.backends.manifest import MANIFEST_NAME, Manifest
from ragkit.backends.urls import LocalSettings
from ragkit.errors import ConfigurationError, StoreError

__all__ = ["CATALOG_NAME", "LocalCatalog"]

CATALOG_NAME = "catalog.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kbs (
    tenant TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, scopes TEXT NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, secret_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kb TEXT NOT NULL, idempotency_key TEXT,
    job TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant, kb, idempotency_key);
CREATE TABLE IF NOT EXISTS rate_buckets (
    bucket TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL
);
"""


def _folder_name(folder: Path) -> str:
    """A kb name from a folder's name: lowercase, other characters as underscores."""
    name = re.sub(r"[^a-z0-9]+", "_", folder.resolve().name.lower()).strip("_")
    name = re.sub(r"^[^a-z]+", "", name)[:40].rstrip("_")
    return name or "default"


def _job_row(job: JobRecord) -> tuple[str, str, str, str | None, str]:
    data = json.dumps(job.__dict__, sort_keys=True, default=str)
    return (job.id, job.tenant, job.kb, job.idempotency_key, data)


def _valid(tenant: str, name: str) -> bool:
    try:
        check_tenant(tenant)
        check_kb_name(name)
    except ConfigurationError:
        return False
    return True


class LocalCatalog:
    """The kbs under a root folder (or the one kb a kb folder is); see the module docstring.

    Example:
        >>> catalog = LocalCatalog(Path("kbs"))  # doctest: +SKIP
        >>> info = catalog.create_kb("acme", "handbook")  # doctest: +SKIP
        >>> RAG(info.settings).add("handbook/")  # doctest: +SKIP

    Args:
        root: the root folder (created if missing), or a kb folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        manifest = Manifest.read(self.root) if (self.root / MANIFEST_NAME).exists() else None
        #: Set when ``root`` is one kb folder: (tenant, name) of that kb.
        self.single: tuple[str, str] | None = (
            (manifest.tenant, _folder_name(self.root)) if manifest is not None else None
        )
        self._lock = threading.RLock()
        path = self.root / CATALOG_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
            # Rate buckets change on every request and need no durability: their own
            # connection commits without waiting for the disk (keys and jobs still do).
            rates = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            rates.execute("PRAGMA busy_timeout=10000")
            rates.execute("PRAGMA synchronous=OFF")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"Could not open the catalog {path} ({exc})") from exc
        self._db = db
        self._rates = rates
        self._rates_lock = threading.Lock()

    # -- knowledge bases ---------------------------------------------------------------

    def settings(self, tenant: str, name: str) -> LocalSettings:
        if self.single is not None and self.single == (tenant, name):
            return LocalSettings(self.root)
        return LocalSettings(self.root / check_tenant(tenant) / check_kb_name(name))

    def list_kbs(self, tenant: str | None = None) -> list[KbInfo]:
        if self.single is not None:
            owner, name = self.single
            if tenant not in (None, owner):
                return []
            created = (self.root / MANIFEST_NAME).stat().st_mtime
            return [KbInfo(name, owner, LocalSettings(self.root), created)]
        sql, args = "SELECT tenant, name, created FROM kbs", ()  # type: tuple[str, tuple[str, ...]]
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        found = {(t, n): c for t, n, c in rows}
        # A kb written straight into ROOT/<tenant>/<name>/ (``ragkit ingest --kb``) is one
        # too, as a schema or collection made without the catalog is for a database.
        for manifest in self.root.glob(f"{tenant or '*'}/*/{MANIFEST_NAME}"):
            owner, name = manifest.parent.parent.name, manifest.parent.name
            if (owner, name) not in found and _valid(owner, name):
                found[(owner, name)] = manifest.stat().st_mtime
        return [KbInfo(n, t, self.settings(t, n), c) for (t, n), c in sorted(found.items())]

    def get_kb(self, tenant: str, name: str) -> KbInfo | None:
        return next((kb for kb in self.list_kbs(tenant) if kb.name == name), None)

    def create_kb(self, tenant: str, name: str) -> KbInfo:
        self._many("create a kb")
        settings = self.settings(tenant, name)
        created = time.time()
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO kbs VALUES (?, ?, ?)", (tenant, name, created))
        except sqlite3.IntegrityError:
            raise ConfigurationError(f"the kb {name!r} exists already") from None
        assert settings.path is not None
        settings.path.mkdir(parents=True, exist_ok=True)
        return KbInfo(name, tenant, settings, created)

    def delete_kb(self, tenant: str, name: str) -> bool:
        self._many("delete a kb")
        if self.get_kb(tenant, name) is None:
            return False
        path = self.settings(tenant, name).path
        with self._transaction() as db:
            db.execute("DELETE FROM kbs WHERE tenant = ? AND name = ?", (tenant, name))
            db.execute("DELETE FROM jobs WHERE tenant = ? AND kb = ?", (tenant, name))
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
        return True

    def _many(self, what: str) -> None:
        if self.single is not None:
            raise ConfigurationError(
                f"{self.root} is one kb folder: cannot {what} in it. Serve a root folder "
                "(an empty or new one) to manage several kbs"
            )

    # -- keys --------------------------------------------------------------------------

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.id, key.tenant, ",".join(key.scopes), key.name, key.created,
                 int(key.revoked), secret_hash),
            )  # fmt: skip

    def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self._lock:
            row = self._db.execute(_KEY + " WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else (_key(row), row[6])

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql, args = _KEY, ()  # type: tuple[str, tuple[str, ...]]
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created DESC, id", args).fetchall()
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._transaction() as db:
            changed = db.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
            return changed.rowcount > 0

    # -- request rates -----------------------------------------------------------------

    def take_request(self, bucket: str, per_minute: float, burst: float) -> float:
        # One write transaction: the processes serving this folder take turns.
        with self._transaction(rates=True) as db:
            now = time.time()
            row = db.execute(
                "SELECT tokens, at FROM rate_buckets WHERE bucket = ?", (bucket,)
            ).fetchone()
            tokens, last = row if row is not None else (burst, now)
            tokens, wait = take_token(tokens, now - last, per_minute, burst)
            db.execute(
                "INSERT OR REPLACE INTO rate_buckets VALUES (?, ?, ?)", (bucket, tokens, now)
            )
        return wait

    # -- jobs --------------------------------------------------------------------------

    def add_job(self, job: JobRecord) -> JobRecord:
        # BEGIN IMMEDIATE takes SQLite's write lock on the file: the look-up and the
        # insert are one step for every process serving this folder.
        with self._transaction() as db:
            if job.idempotency_key is not None:
                row = db.execute(
                    "SELECT job FROM jobs WHERE tenant = ? AND kb = ? AND idempotency_key = ?",
                    (job.tenant, job.kb, job.idempotency_key),
                ).fetchone()
                if row is not None:
                    return JobRecord(**json.loads(row[0]))
            db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)", _job_row(job))
        return job

    def save_job(self, job: JobRecord) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?)", _job_row(job))

    def get_job(self, tenant: str, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
            ).fetchone()
        return None if row is None else JobRecord(**json.loads(row[0]))

    def find_job(self, tenant: str, kb: str, idempotency_key: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job FROM jobs WHERE tenant = ? AND kb = ? AND idempotency_key = ?",
                (tenant, kb, idempotency_key),
            ).fetchone()
        return None if row is None else JobRecord(**json.loads(row[0]))

    def close(self) -> None:
        with self._lock, self._rates_lock:
            self._db.close()
            self._rates.close()

    def __repr__(self) -> str:
        return f"LocalCatalog({self.location!r})"

    @contextmanager
    def _transaction(self, rates: bool = False) -> Iterator[sqlite3.Connection]:
        lock, db = (self._rates_lock, self._rates) if rates else (self._lock, self._db)
        with lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


_KEY = "SELECT id, tenant, scopes, name, created, revoked, secret_hash FROM api_keys"


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, scopes, name, created, revoked, _ = row
    return ApiKey(key_id, tenant, tuple(s for s in scopes.split(",") if s), name, created,
                  bool(revoked))  # fmt: skip
