"""MilvusCatalog on a real Milvus Lite server: the catalog contract, kbs made without the
catalog, reserved names, a delete waiting for a writer's lease, a cut job save."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from ragkit import RAG
from ragkit.backends import open_catalog
from ragkit.backends.catalog import JobRecord
from ragkit.backends.milvus import MilvusBackend
from ragkit.backends.milvus.catalog import JOBS, KEYS, MilvusCatalog
from ragkit.backends.urls import MilvusSettings, parse_location
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError
from ragkit.testing import FakeEmbedder
from ragkit.testing.catalog_contract import CatalogContract, Reopen

pytestmark = pytest.mark.integration


def _settings(url: str) -> MilvusSettings:
    settings = parse_location(url)
    assert isinstance(settings, MilvusSettings)
    return settings


@pytest.fixture
def server(milvus_url: str) -> str:
    """The server's URL, waiting at most half a second for a writer's lease."""
    return f"{milvus_url}?lock_wait=0.5"


class TestMilvusCatalog(CatalogContract):
    @pytest.fixture
    def catalog(self, server: str) -> Iterator[MilvusCatalog]:
        catalog = MilvusCatalog(_settings(server))
        yield catalog
        catalog.close()

    @pytest.fixture
    def reopen(self, server: str) -> Reopen:
        return lambda: MilvusCatalog(_settings(server))

    @pytest.fixture
    def stored_text(self, catalog: MilvusCatalog) -> Callable[[], str]:
        def text() -> str:
            rows = catalog._conn.query_all("test", KEYS, 'id != ""', ["*"])
            return json.dumps(rows, default=str)

        return text


def _tenant() -> str:
    return "t" + uuid.uuid4().hex[:12]


def test_open_catalog_takes_the_server_url(server: str) -> None:
    catalog = open_catalog(server + "&collection=ignored")
    try:
        assert isinstance(catalog, MilvusCatalog)
        assert "collection=" not in catalog.location
        info = catalog.create_kb(_tenant(), "docs")
        assert isinstance(info.settings, MilvusSettings)
        assert (info.settings.uri, info.settings.lock_wait) == (_settings(server).uri, 0.5)
        assert catalog.delete_kb(info.tenant, "docs")
    finally:
        catalog.close()


def test_a_kb_made_without_the_catalog_is_listed(server: str) -> None:
    tenant = _tenant()
    url = f"{server}&collection=direct&tenant={tenant}"
    with RAG(url, embedder=FakeEmbedder()) as rag:
        assert rag.tenant == tenant
    with MilvusCatalog(_settings(server)) as catalog:
        (info,) = catalog.list_kbs(tenant)
        assert (info.tenant, info.name, info.settings) == (tenant, "direct", _settings(url))
        assert catalog.get_kb(tenant, "direct") == info  # the time it was first seen, kept
        with pytest.raises(ConfigurationError, match="exists already"):
            catalog.create_kb(tenant, "direct")
        default_kb = "d" + uuid.uuid4().hex[:12]
        MilvusBackend(_settings(f"{server}&collection={default_kb}")).close()
        listed = catalog.get_kb("default", default_kb)
        assert listed is not None
        assert listed in catalog.list_kbs()
        assert catalog.delete_kb(tenant, "direct")
        assert catalog.delete_kb("default", default_kb)
        assert catalog.get_kb("default", default_kb) is None


def test_the_catalogs_names_are_no_kbs(server: str) -> None:
    with MilvusCatalog(_settings(server)) as catalog:
        names = {kb.name for kb in catalog.list_kbs("default")}
        assert not any(name.startswith("ragkit_catalog_") for name in names)
        assert catalog.get_kb("default", "ragkit_catalog_kbs") is None
        with pytest.raises(ConfigurationError, match="reserved"):
            catalog.create_kb("default", "ragkit_catalog_jobs")
        with pytest.raises(ConfigurationError, match="reserved"):
            RAG(f"{server}&collection=ragkit_catalog_keys", embedder=FakeEmbedder())
        tenant = _tenant()  # another tenant's collection is <tenant>__...: allowed
        assert catalog.create_kb(tenant, "ragkit_catalog_kbs").tenant == tenant
        assert catalog.delete_kb(tenant, "ragkit_catalog_kbs")


def test_delete_waits_for_a_writers_lease_then_gives_up(server: str) -> None:
    tenant = _tenant()
    with MilvusCatalog(_settings(server)) as catalog:
        info = catalog.create_kb(tenant, "busy")
        assert isinstance(info.settings, MilvusSettings)
        backend = MilvusBackend(info.settings)
        try:
            with backend.writing():
                with pytest.raises(KnowledgeBaseLockedError, match="lease"):
                    catalog.delete_kb(tenant, "busy")
                assert catalog.get_kb(tenant, "busy") is not None
        finally:
            backend.close()
        assert catalog.delete_kb(tenant, "busy")


def test_a_job_save_cut_short_leaves_the_previous_state(server: str) -> None:
    tenant = _tenant()
    with MilvusCatalog(_settings(server)) as catalog:
        job = JobRecord("j" + uuid.uuid4().hex, tenant, "docs", "running", "upload", 1.0, 1.0)
        catalog.save_job(job)
        # A newer version of which only the first of two rows landed.
        half = {"key": f"{job.id}:{2**62}:0", "id": job.id, "tenant": tenant, "kb": "docs",
                "idempotency_key": "", "seq": 2**62, "part": 0, "parts": 2, "data": "{",
                "vector": [1.0, 0.0]}  # fmt: skip
        catalog._conn.call("test", "upsert", JOBS, [half])
        assert catalog.get_job(tenant, job.id) == job
