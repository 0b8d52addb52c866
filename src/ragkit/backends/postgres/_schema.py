"""The tables of a kb in PostgreSQL: numbered migrations, applied once under a lock.

Each kb has a schema of its own, ``ragkit_<kb>``: its chunks (with the filterable
fields as JSONB and, from the first write, the vectors and their HNSW index), the
keyword terms, per-document totals for BM25 and documents counted by size (``sizes``,
BM25's corpus totals), the record of indexed sources and a meta
table (manifest, tokenizer settings). ``schema_version`` lists the migrations applied;
a migration is a list of SQL statements in which ``{s}`` is the kb's schema. They are
applied in one transaction under a database-wide advisory lock, so two processes
opening a new kb at once do not both create it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ragkit.errors import ConfigurationError

__all__ = [
    "MIGRATE_LOCK",
    "MIGRATIONS",
    "RESERVED_SCHEMA",
    "WRITER_LOCK",
    "WRITE_LOCK",
    "kb_key",
    "migrate",
    "schema_name",
]

# Advisory lock namespaces (the first of pg_advisory_lock's two int4 keys); the kb's
# key is the second. The writers' lock (held across a whole add/sync on a connection
# of its own) and the lock every write transaction takes must differ: a writer holding
# the first still writes through pool connections, which take the second.
_NS = 0x52414700  # "RAG\0"
WRITER_LOCK = _NS + 1
WRITE_LOCK = _NS + 2
MIGRATE_LOCK = _NS + 3

#: The schema of the database's catalog (keys, jobs; ``catalog.py``): no kb's.
RESERVED_SCHEMA = "ragkit_catalog"

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
        # id order is code point order (COLLATE "C"), as Python sorts strings.
        'CREATE TABLE {s}.chunks (id text COLLATE "C" PRIMARY KEY, '
        'document_id text COLLATE "C" NOT NULL, length integer NOT NULL, '
        "fields jsonb NOT NULL, chunk text NOT NULL)",
        "CREATE INDEX chunks_document ON {s}.chunks (document_id)",
        "CREATE INDEX chunks_fields ON {s}.chunks USING gin (fields jsonb_path_ops)",
        'CREATE TABLE {s}.terms (term text COLLATE "C" NOT NULL, '
        'chunk_id text COLLATE "C" NOT NULL, document_id text COLLATE "C" NOT NULL, '
        "tf integer NOT NULL, length integer NOT NULL, PRIMARY KEY (term, chunk_id))",
        "CREATE INDEX terms_chunk ON {s}.terms (chunk_id)",
        'CREATE TABLE {s}.documents (document_id text COLLATE "C" PRIMARY KEY, '
        "n_chunks integer NOT NULL, length bigint NOT NULL)",
        'CREATE TABLE {s}.record (source text COLLATE "C" PRIMARY KEY, '
        "content_hash text NOT NULL, chunk_ids text[] NOT NULL, settings_hash text NOT NULL, "
        "state text NOT NULL CHECK (state IN ('pending', 'done')), previous_ids text[], "
        "updated_at timestamptz NOT NULL DEFAULT now())",
    ],
    [
        # Keyword search reads a term's postings from the index alone (an index-only
        # scan once autovacuum has set the visibility map): on SciFact BM25 at k=50 went
        # from 27 to 16 ms per query.
        "ALTER TABLE {s}.terms DROP CONSTRAINT terms_pkey, ADD CONSTRAINT terms_pkey "
        "PRIMARY KEY (term, chunk_id) INCLUDE (document_id, tf, length)",
        # Documents by number of chunks: BM25's corpus totals for any scope in a few rows,
        # instead of a scan of every document per query.
        "CREATE TABLE {s}.sizes (n_chunks integer PRIMARY KEY, documents bigint NOT NULL, "
        "length bigint NOT NULL)",
        "INSERT INTO {s}.sizes SELECT n_chunks, count(*), sum(length) FROM {s}.documents "
        "GROUP BY n_chunks",
    ],
]


def schema_name(kb: str) -> str:
    """The kb's schema; ``kb`` is its namespace (``name`` or ``<tenant>__<name>``, made
    of :data:`ragkit.backends.urls.KB_NAME` characters), a plain identifier that needs no
    quoting.

    Raises:
        ConfigurationError: ``kb`` is ``catalog``, whose schema holds the catalog.
    """
    schema = f"ragkit_{kb}"
    if schema == RESERVED_SCHEMA:
        raise ConfigurationError(
            f"the kb name {kb!r} is reserved in PostgreSQL: the schema {schema} holds "
            "ragkit's catalog (API keys, jobs); choose another name"
        )
    return schema


def kb_key(kb: str) -> int:
    """The kb's advisory lock key: a signed int4 from its name."""
    return int.from_bytes(hashlib.sha256(kb.encode()).digest()[:4], "big", signed=True)


def migrate(conn: Any, schema: str, location: str) -> None:
    """Create or upgrade the kb's tables, in one transaction (``conn`` not in autocommit).

    Raises:
        ConfigurationError: the kb was made by a newer ragkit.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (MIGRATE_LOCK,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {schema}.schema_version")
        current = int(row.fetchone()[0])
        if current > len(MIGRATIONS):
            raise ConfigurationError(
                f"{location} was made by a newer ragkit (schema version {current}; this one "
                f"knows up to {len(MIGRATIONS)}); upgrade ragkit to open it"
            )
        for version, steps in enumerate(MIGRATIONS[current:], current + 1):
            for step in steps:
                conn.execute(step.format(s=schema))
            conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES (%s)", (version,))
