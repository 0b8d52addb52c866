"""The local catalog (kbs per tenant in a root folder, keys, jobs) and API keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.backends.catalog import Catalog, JobRecord
from ragkit.backends.keys import authenticate, create_key, parse_key
from ragkit.backends.local_catalog import CATALOG_NAME, LocalCatalog
from ragkit.backends.urls import LocalSettings
from ragkit.errors import ConfigurationError
from ragkit.testing import FakeEmbedder


def test_kbs_of_two_tenants_with_one_name_live_apart(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "root")
    assert isinstance(catalog, Catalog)
    acme = catalog.create_kb("acme", "docs")
    globex = catalog.create_kb("globex", "docs")
    assert acme.settings != globex.settings
    with RAG(acme.settings, embedder=FakeEmbedder(), store="memory", tenant="acme") as rag:
        rag.add(_doc(tmp_path, "acme.txt", "Acme's secret plan is rockets."))
    with RAG(globex.settings, embedder=FakeEmbedder(), store="memory") as rag:
        assert rag.retrieve("secret plan rockets") == []
    assert [kb.name for kb in catalog.list_kbs("acme")] == ["docs"]
    assert [(kb.tenant, kb.name) for kb in catalog.list_kbs()] == [
        ("acme", "docs"),
        ("globex", "docs"),
    ]
    assert catalog.get_kb("globex", "nope") is None
    with pytest.raises(ConfigurationError, match="exists already"):
        catalog.create_kb("acme", "docs")
    assert catalog.delete_kb("acme", "docs")
    assert not catalog.delete_kb("acme", "docs")
    assert acme.settings.path is not None
    assert not acme.settings.path.exists()
    assert catalog.get_kb("globex", "docs") is not None
    catalog.close()


def test_bad_names_are_refused(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path)
    with pytest.raises(ConfigurationError, match="tenant"):
        catalog.create_kb("../etc", "docs")
    with pytest.raises(ConfigurationError, match="kb name"):
        catalog.create_kb("acme", "a__b")
    with pytest.raises(ConfigurationError, match="kb name"):
        catalog.create_kb("acme", "../x")


def test_a_kb_folder_is_served_as_its_one_kb(tmp_path: Path) -> None:
    folder = tmp_path / "My Handbook"
    with RAG(folder, embedder=FakeEmbedder(), store="memory", tenant="acme") as rag:
        rag.add(_doc(tmp_path, "a.txt", "alpha"))
    catalog = LocalCatalog(folder)
    assert catalog.single == ("acme", "my_handbook")
    (kb,) = catalog.list_kbs("acme")
    assert (kb.name, kb.tenant, kb.settings) == ("my_handbook", "acme", LocalSettings(folder))
    assert catalog.list_kbs("globex") == []
    assert catalog.get_kb("globex", "my_handbook") is None
    with pytest.raises(ConfigurationError, match="one kb folder"):
        catalog.create_kb("acme", "other")
    assert (folder / CATALOG_NAME).exists()


def test_a_folder_kb_keeps_its_tenant(tmp_path: Path) -> None:
    with RAG(tmp_path / "kb", embedder=FakeEmbedder(), store="memory", tenant="acme") as rag:
        rag.add(_doc(tmp_path, "a.txt", "alpha"))
    with RAG(tmp_path / "kb", embedder=FakeEmbedder()) as rag:
        assert rag.tenant == "acme"
    with pytest.raises(ConfigurationError, match="belongs to the tenant 'acme'"):
        RAG(tmp_path / "kb", embedder=FakeEmbedder(), tenant="globex")


def test_a_key_is_shown_once_and_kept_hashed(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path)
    key, secret = create_key(catalog, "acme", ["write", "read"], name="ci")
    assert key.scopes == ("read", "write")
    assert parse_key(secret) == (key.id, secret.split("_", 2)[2])
    stored = (tmp_path / CATALOG_NAME).read_bytes()
    assert secret.split("_", 2)[2].encode() not in stored
    assert authenticate(catalog, secret) == key
    assert authenticate(catalog, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert authenticate(catalog, "rk_000000000000_nothing") is None
    assert authenticate(catalog, "Bearer nonsense") is None
    other, _ = create_key(catalog, "globex")
    assert [k.id for k in catalog.list_keys("acme")] == [key.id]
    assert {k.id for k in catalog.list_keys()} == {key.id, other.id}
    assert catalog.revoke_key(key.id)
    assert authenticate(catalog, secret) is None
    assert not catalog.revoke_key("ffffffffffff")
    with pytest.raises(ConfigurationError, match="scopes"):
        create_key(catalog, "acme", ["superuser"])


def test_jobs_are_found_by_tenant_and_idempotency_key(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path)
    now = time.time()
    job = JobRecord("j1", "acme", "docs", "queued", "upload", now, now, "key-1", {"files": 2})
    catalog.save_job(job)
    assert catalog.get_job("acme", "j1") == job
    assert catalog.get_job("globex", "j1") is None
    assert catalog.find_job("acme", "docs", "key-1") == job
    assert catalog.find_job("globex", "docs", "key-1") is None
    done = JobRecord(**{**job.__dict__, "state": "succeeded"})
    catalog.save_job(done)
    assert LocalCatalog(tmp_path).get_job("acme", "j1") == done  # another process sees it


def _doc(folder: Path, name: str, text: str) -> Path:
    path = folder / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
