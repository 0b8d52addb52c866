"""Test helpers shipped with ragkit: deterministic fakes and contract suites.

Use them to test your own components: a store you write passes when a subclass of
:class:`ragkit.testing.VectorStoreContract` passes under pytest.
"""

from ragkit.testing.fakes import FakeEmbedder, FakeGenerator

__all__ = ["FakeEmbedder", "FakeGenerator"]
