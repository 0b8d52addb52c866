"""Test helpers shipped with ragkit: deterministic fakes and contract suites.

Use them to test your own components: a store you write passes when a subclass of
:class:`ragkit.testing.VectorStoreContract` passes under pytest::

    from ragkit.testing import VectorStoreContract

    class TestMyStore(VectorStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)

The contract suites (stores, retrievers, catalogs) import pytest, so it loads only when first used.
"""

from typing import Any

from ragkit.testing.fakes import FakeEmbedder, FakeGenerator

__all__ = [
    "CatalogContract",
    "FakeEmbedder",
    "FakeGenerator",
    "RetrieverContract",
    "VectorStoreContract",
]


def __getattr__(name: str) -> Any:
    if name == "VectorStoreContract":
        from ragkit.testing.store_contract import VectorStoreContract

        return VectorStoreContract
    if name == "CatalogContract":
        from ragkit.testing.catalog_contract import CatalogContract

        return CatalogContract
    if name == "RetrieverContract":
        from ragkit.testing.retriever_contract import RetrieverContract

        return RetrieverContract
    raise AttributeError(f"module 'ragkit.testing' has no attribute {name!r}")
