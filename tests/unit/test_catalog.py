"""The local catalog (kbs per tenant in a root folder, keys, jobs): the catalog contract,
and what only a folder does (one kb folder served as a catalog, the tenant in its
manifest)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragkit import RAG
from ragkit.backends.local_catalog import CATALOG_NAME, LocalCatalog
from ragkit.backends.urls import LocalSettings
from ragkit.errors import ConfigurationError
from ragkit.testing import FakeEmbedder
from ragkit.testing.catalog_contract import CatalogContract, Reopen


class TestLocalCatalog(CatalogContract):
    @pytest.fixture
    def catalog(self, tmp_path: Path) -> Iterator[LocalCatalog]:
        catalog = LocalCatalog(tmp_path / "root")
        yield catalog
        catalog.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        return lambda: LocalCatalog(tmp_path / "root")

    @pytest.fixture
    def rag_options(self) -> dict[str, Any]:
        return {"store": "memory"}

    @pytest.fixture
    def stored_text(self, tmp_path: Path) -> Callable[[], str]:
        def text() -> str:
            root = tmp_path / "root"
            files = [root / CATALOG_NAME, *root.glob(CATALOG_NAME + "-*")]  # the WAL too
            return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())

        return text


def test_a_deleted_kbs_folder_is_gone(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "root")
    info = catalog.create_kb("acme", "docs")
    assert info.settings == LocalSettings(tmp_path / "root" / "acme" / "docs")
    assert info.settings.path is not None
    assert info.settings.path.is_dir()
    assert catalog.delete_kb("acme", "docs")
    assert not info.settings.path.exists()
    catalog.close()


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


def _doc(folder: Path, name: str, text: str) -> Path:
    path = folder / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_server_reopens_a_kb_that_another_worker_deleted_and_made_again(
    tmp_path: Path,
) -> None:
    from ragkit.server.state import KbPool
    from ragkit.server.testing import fake_opener

    pool = KbPool(LocalCatalog(tmp_path), fake_opener())
    LocalCatalog(tmp_path).create_kb("acme", "docs")
    first = pool.rag("acme", "docs")
    assert pool.rag("acme", "docs") is first
    first.add(_doc(tmp_path, "old.txt", "The old kb says lanterns."))

    other = LocalCatalog(tmp_path)  # another worker, sharing the folder
    other.delete_kb("acme", "docs")
    time.sleep(0.01)  # a later creation time
    other.create_kb("acme", "docs")
    second = pool.rag("acme", "docs")
    assert second is not first
    assert second.retrieve("lanterns") == []  # the new, empty kb, not the old one
    pool.close()


def test_a_kb_written_straight_into_the_root_is_listed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with RAG(root / "acme" / "handbook", embedder=FakeEmbedder(), store="memory") as rag:
        rag.add(_doc(tmp_path, "a.txt", "alpha"))
    with RAG(root / "acme" / "Not A Name", embedder=FakeEmbedder(), store="memory") as rag:
        rag.add(_doc(tmp_path, "b.txt", "bravo"))
    catalog = LocalCatalog(root)
    assert [(kb.tenant, kb.name) for kb in catalog.list_kbs()] == [("acme", "handbook")]
    assert catalog.get_kb("globex", "handbook") is None
    info = catalog.get_kb("acme", "handbook")
    assert info is not None
    assert info.settings == LocalSettings(root / "acme" / "handbook")
    assert catalog.delete_kb("acme", "handbook")
    assert catalog.list_kbs() == []
