"""The PostgreSQL backend: ``RAG("postgresql://user@host/db?kb=name")``.

Needs PostgreSQL with the pgvector extension and ``pip install "ragkit[postgres]"``
(psycopg 3, psycopg-pool, pgvector); a missing package raises
:class:`~ragkit.errors.MissingDependencyError` naming that extra.
"""

from __future__ import annotations

from ragkit._deps import require

_PURPOSE = "A PostgreSQL knowledge base"
require("psycopg", extra="postgres", purpose=_PURPOSE)
require("psycopg_pool", extra="postgres", purpose=_PURPOSE, package="psycopg-pool")
require("pgvector.psycopg", extra="postgres", purpose=_PURPOSE, package="pgvector")

from ragkit.backends.postgres.backend import PostgresBackend  # noqa: E402 (after the checks)
from ragkit.backends.postgres.catalog import PostgresCatalog  # noqa: E402
from ragkit.backends.postgres.keyword import PostgresBM25Retriever  # noqa: E402
from ragkit.backends.postgres.store import PostgresStore  # noqa: E402

__all__ = ["PostgresBM25Retriever", "PostgresBackend", "PostgresCatalog", "PostgresStore"]
