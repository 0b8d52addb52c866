"""PostgresCatalog on a real PostgreSQL: the catalog contract, kbs made without the
catalog, the reserved name, a delete waiting for a writer, and no password in errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ragkit import RAG
from ragkit.backends import open_catalog
from ragkit.backends.postgres import PostgresBackend
from ragkit.backends.postgres.catalog import CATALOG_SCHEMA, PostgresCatalog
from ragkit.backends.urls import PostgresSettings, parse_location
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError, StoreError
from ragkit.testing import FakeEmbedder
from ragkit.testing.catalog_contract import CatalogContract, Reopen

pytestmark = pytest.mark.integration


def _settings(url: str) -> PostgresSettings:
    settings = parse_location(url)
    assert isinstance(settings, PostgresSettings)
    return settings


@pytest.fixture
def database(postgres_server: Any) -> str:
    """The database's URL, without a kb."""
    return f"{postgres_server.get_uri()}&connect_timeout=3&lock_wait=0.5"


class TestPostgresCatalog(CatalogContract):
    @pytest.fixture
    def catalog(self, database: str) -> Iterator[PostgresCatalog]:
        catalog = PostgresCatalog(_settings(database))
        yield catalog
        catalog.close()

    @pytest.fixture
    def reopen(self, database: str) -> Reopen:
        return lambda: PostgresCatalog(_settings(database))

    @pytest.fixture
    def stored_text(self, catalog: PostgresCatalog) -> Callable[[], str]:
        def text() -> str:
            with catalog._cursor("test") as cur:
                cur.execute(f"SELECT api_keys::text FROM {CATALOG_SCHEMA}.api_keys api_keys")
                return "\n".join(row[0] for row in cur.fetchall())

        return text


def _tenant() -> str:
    return "t" + uuid.uuid4().hex[:12]


def test_open_catalog_takes_the_database_url(database: str) -> None:
    catalog = open_catalog(database + "&kb=ignored")
    try:
        assert isinstance(catalog, PostgresCatalog)
        assert "kb=" not in catalog.location
        info = catalog.create_kb(_tenant(), "docs")
        assert isinstance(info.settings, PostgresSettings)
        assert info.settings.dsn == _settings(database).dsn
        assert info.settings.lock_wait == 0.5
    finally:
        catalog.close()


def test_a_kb_made_without_the_catalog_is_listed(database: str) -> None:
    tenant = _tenant()
    url = f"{database}&kb=direct&tenant={tenant}"
    with RAG(url, embedder=FakeEmbedder()) as rag:
        assert rag.tenant == tenant
    with PostgresCatalog(_settings(database)) as catalog:
        (info,) = catalog.list_kbs(tenant)
        assert (info.tenant, info.name) == (tenant, "direct")
        assert info.settings == _settings(url)
        assert catalog.get_kb(tenant, "direct") == info
        with pytest.raises(ConfigurationError, match="exists already"):
            catalog.create_kb(tenant, "direct")
        default_kb = "d" + uuid.uuid4().hex[:12]
        PostgresBackend(_settings(f"{database}&kb={default_kb}")).close()
        listed = catalog.get_kb("default", default_kb)
        assert listed is not None
        assert listed in catalog.list_kbs()
        assert catalog.delete_kb(tenant, "direct")
        assert catalog.delete_kb("default", default_kb)


def test_the_catalogs_schema_is_no_kb(database: str) -> None:
    with PostgresCatalog(_settings(database)) as catalog:
        assert all(kb.name != "catalog" for kb in catalog.list_kbs("default"))
        assert catalog.get_kb("default", "catalog") is None
        assert not catalog.delete_kb("default", "catalog")
        with pytest.raises(ConfigurationError, match="reserved"):
            catalog.create_kb("default", "catalog")
        with pytest.raises(ConfigurationError, match="reserved"):
            RAG(f"{database}&kb=catalog", embedder=FakeEmbedder())
        # Another tenant's kb named catalog lives in ragkit_<tenant>__catalog: allowed.
        tenant = _tenant()
        assert catalog.create_kb(tenant, "catalog").name == "catalog"
        assert catalog.delete_kb(tenant, "catalog")
        assert catalog.find_key("000000000000") is None  # the catalog is intact


def test_delete_waits_for_a_writer_then_gives_up(database: str) -> None:
    tenant = _tenant()
    with PostgresCatalog(_settings(database)) as catalog:
        info = catalog.create_kb(tenant, "busy")
        assert isinstance(info.settings, PostgresSettings)
        backend = PostgresBackend(info.settings)
        try:
            with backend.writing():
                with pytest.raises(KnowledgeBaseLockedError, match="being written"):
                    catalog.delete_kb(tenant, "busy")
                assert catalog.get_kb(tenant, "busy") is not None
        finally:
            backend.close()
        assert catalog.delete_kb(tenant, "busy")


def test_errors_name_the_database_without_its_password() -> None:
    settings = _settings("postgresql://me:hunter2@127.0.0.1:1/db?connect_timeout=1")
    with pytest.raises(StoreError) as caught:
        PostgresCatalog(settings)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:1/db" in str(caught.value)


def test_catalog_migration_2_makes_idempotency_keys_unique(postgres_server: Any) -> None:
    """A version-1 catalog (a non-unique key index) holding two jobs for one key, as two
    workers could make them: after the upgrade the oldest holds the key, the other
    keeps its record without it, and a new job for the key gets the oldest back."""
    import psycopg
    from psycopg.types.json import Jsonb

    from ragkit.backends.catalog import JobRecord
    from ragkit.backends.postgres.catalog import CATALOG_MIGRATIONS

    name = "m" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server.get_uri().replace("/postgres?", f"/{name}?") + "&connect_timeout=3"
    tenant = _tenant()
    old = JobRecord("job_b", tenant, "docs", "succeeded", "upload", 100.0, 101.0, "k1")
    new = JobRecord("job_a", tenant, "docs", "succeeded", "upload", 200.0, 201.0, "k1")
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(f"CREATE SCHEMA {CATALOG_SCHEMA}")
        conn.execute(f"CREATE TABLE {CATALOG_SCHEMA}.schema_version (version integer "
                     "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for step in CATALOG_MIGRATIONS[0]:
            conn.execute(step.format(s=CATALOG_SCHEMA))
        conn.execute(f"INSERT INTO {CATALOG_SCHEMA}.schema_version (version) VALUES (1)")
        for job in (new, old):
            conn.execute(f"INSERT INTO {CATALOG_SCHEMA}.jobs VALUES (%s, %s, %s, %s, %s)",
                         (job.id, job.tenant, job.kb, job.idempotency_key,
                          Jsonb(job.__dict__)))  # fmt: skip
    with PostgresCatalog(_settings(url)) as catalog:
        assert catalog.find_job(tenant, "docs", "k1") == old
        assert catalog.get_job(tenant, new.id) == new
        third = JobRecord("job_c", tenant, "docs", "queued", "upload", 300.0, 300.0, "k1")
        assert catalog.add_job(third) == old
        assert catalog.get_job(tenant, third.id) is None
        with catalog._cursor("test") as cur:
            cur.execute(f"SELECT max(version) FROM {CATALOG_SCHEMA}.schema_version")
            assert cur.fetchone()[0] == len(CATALOG_MIGRATIONS)
