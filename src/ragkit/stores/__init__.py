"""Vector stores: where chunks and their embeddings are kept and searched.

Every store fits the :class:`ragkit.protocols.VectorStore` protocol and passes the
contract suite in :mod:`ragkit.testing.store_contract`:

* :class:`MemoryStore`: exact search in a numpy matrix, optionally saved to a folder.
* :class:`ChromaStore`: a Chroma collection (local folder, in memory, or a client).
* :class:`FaissStore`: FAISS search (exact; HNSW above 50,000 chunks), chunks in SQLite.

Chroma and FAISS are imported when a store first needs them, not here.
"""

from ragkit.stores.chroma import ChromaStore
from ragkit.stores.faiss import FaissStore
from ragkit.stores.memory import MemoryStore

__all__ = ["ChromaStore", "FaissStore", "MemoryStore"]
