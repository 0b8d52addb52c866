"""Knowledge-base backends: where chunks, vectors, keyword index, record and lock live.

:func:`open_backend` turns a folder or URL into a backend: a folder (or ``None``, in
memory) is a :class:`~ragkit.backends.local.LocalBackend`; ``postgresql://...`` a
PostgreSQL database with pgvector; ``milvus://...`` a Milvus server. See
:mod:`ragkit.backends.base` for the contract and ``docs/deployment.md`` for running many
ragkit processes on one database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ragkit.backends.base import Batch, Change, KnowledgeBaseBackend, Record, RecordEntry
from ragkit.backends.urls import (
    LocalSettings,
    MilvusSettings,
    PostgresSettings,
    Settings,
    parse_location,
)
from ragkit.errors import ConfigurationError

if TYPE_CHECKING:
    from ragkit.backends.catalog import Catalog
    from ragkit.protocols import VectorStore

__all__ = [
    "Batch",
    "Change",
    "KnowledgeBaseBackend",
    "LocalSettings",
    "MilvusSettings",
    "PostgresSettings",
    "Record",
    "RecordEntry",
    "Settings",
    "open_backend",
    "open_catalog",
    "parse_location",
]


def open_backend(
    location: str | os.PathLike[str] | Settings | None,
    *,
    store: str | VectorStore | None = None,
    keyword: bool = True,
    keyword_scope: str = "auto",
) -> KnowledgeBaseBackend:
    """The backend of the kb at ``location`` (a folder, a URL, parsed settings, or None).

    Args:
        location: a folder (``None``: in memory), ``postgresql://user@host/db?kb=name``
            or ``milvus://host:port?collection=name``.
        store: for a folder only: the vector store kind or object.
        keyword: for a folder only: keep the BM25 index (hybrid and keyword retrieval).
        keyword_scope: what BM25 scores (``"auto"``, ``"chunk"``, ``"document"``).
    """
    settings = parse_location(location)
    if isinstance(settings, LocalSettings):
        from ragkit.backends.local import LocalBackend

        return LocalBackend.open(
            settings.path, store=store, keyword=keyword, keyword_scope=keyword_scope
        )
    if store is not None:
        raise ConfigurationError(
            f"store={store!r} applies to a kb folder; {settings.location} keeps its chunks "
            "in the database itself"
        )
    if isinstance(settings, PostgresSettings):
        from ragkit.backends.postgres import PostgresBackend

        return PostgresBackend(settings, keyword_scope=keyword_scope)
    from ragkit.backends.milvus import MilvusBackend

    return MilvusBackend(settings)


def open_catalog(location: str | os.PathLike[str] | Settings) -> Catalog:
    """The catalog of the engine at ``location``: its kbs per tenant, API keys and jobs.

    A folder is a :class:`~ragkit.backends.local_catalog.LocalCatalog` (a root of kbs,
    or one kb folder); a ``postgresql://`` or ``milvus://`` URL the catalog kept in that
    database or server (the URL's ``kb``/``collection`` is ignored: a catalog holds
    every kb of every tenant).

    Raises:
        ConfigurationError: ``location`` is not a folder or a known URL.
    """
    settings = parse_location(location)
    if isinstance(settings, LocalSettings):
        if settings.path is None:
            raise ConfigurationError(
                "a catalog needs a folder or a database URL, not an in-memory kb"
            )
        from ragkit.backends.local_catalog import LocalCatalog

        return LocalCatalog(settings.path)
    if isinstance(settings, PostgresSettings):
        from ragkit.backends.postgres.catalog import PostgresCatalog

        return PostgresCatalog(settings)
    from ragkit.backends.milvus.catalog import MilvusCatalog

    return MilvusCatalog(settings)
