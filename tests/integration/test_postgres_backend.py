"""PostgresBackend on a real PostgreSQL: BM25 parity with KeywordIndex, one transaction per
Batch, kbs apart, selective filters, the writers' lock, and a server restart."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from ragkit.backends.base import Batch, Change, RecordEntry
from ragkit.backends.manifest import Manifest
from ragkit.backends.postgres import PostgresBackend
from ragkit.backends.urls import PostgresSettings, parse_location
from ragkit.errors import KnowledgeBaseLockedError, StoreError
from ragkit.retrieval.keyword import KeywordIndex
from ragkit.testing.store_contract import make_chunk, unit_vectors
from ragkit.types import Chunk

pytestmark = pytest.mark.integration

WORDS = [
    "pool",
    "connection",
    "timeout",
    "retry",
    "proxy",
    "certificate",
    "cookie",
    "session",
    "header",
    "stream",
    "cache",
    "index",
    "vector",
    "chunk",
    "document",
    "query",
    "score",
    "rank",
    "filter",
    "batch",
    "writer",
    "reader",
    "lock",
    "snapshot",
    "server",
    "restart",
    "schema",
    "table",
    "column",
    "term",
    "token",
    "stem",
]


def settings(url: str) -> PostgresSettings:
    parsed = parse_location(url)
    assert isinstance(parsed, PostgresSettings)
    return parsed


@pytest.fixture
def opened() -> Iterator[list[PostgresBackend]]:
    backends: list[PostgresBackend] = []
    yield backends
    for backend in backends:
        backend.close()


def open_kb(url: str, opened: list[PostgresBackend], **kwargs: Any) -> PostgresBackend:
    opened.append(PostgresBackend(settings(url), **kwargs))
    return opened[-1]


def corpus(seed: int = 0) -> list[Chunk]:
    """Documents of 1 to 12 chunks (both sides of the "auto" threshold of 7), with
    titles and heading paths, repeated words and a few duplicated texts (ties)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for d, size in enumerate([1, 1, 2, 3, 5, 7, 8, 12, 1, 2, 4, 9]):
        for i in range(size):
            text = " ".join(rng.choice(WORDS, int(rng.integers(3, 40))))
            if d == 8:
                text = chunks[0].text  # same text as another document: equal scores
            metadata: dict[str, Any] = {"lang": "en" if (d + i) % 3 else "de", "n": i}
            if d % 4 == 1:
                metadata["title"] = f"Guide to {WORDS[d]} settings"
            if d % 5 == 2:
                metadata["heading_path"] = "Setup > " + WORDS[-d]
            chunks.append(
                make_chunk(f"d{d:02d}-{i:02d}", text, source=f"doc{d}.md", metadata=metadata)
            )
    return chunks


QUERIES = [
    "pool connection",
    "timeout timeout retry",
    "settings guide cookie",
    "setup stem token",
    "snapshot reader writer lock server",
    "nothing matches zzz",
    "document",
]


@pytest.mark.parametrize("scope", ["auto", "chunk", "document"])
def test_bm25_in_sql_equals_keyword_index(
    postgres_url: str, opened: list[PostgresBackend], scope: str
) -> None:
    chunks = corpus()
    backend = open_kb(postgres_url, opened, keyword_scope=scope)
    index = KeywordIndex(scope=scope)  # type: ignore[arg-type]
    vectors = unit_vectors(len(chunks), 8)
    backend.store.upsert(chunks, vectors)
    index.upsert(chunks)
    # Changes after the first write keep the per-document totals right.
    gone = [chunks[3].id, chunks[20].id, chunks[21].id]
    backend.store.delete(gone)
    index.delete(gone)
    changed = [make_chunk(chunks[30].id, "pool pool pool restart", source=chunks[30].source)]
    backend.store.upsert(changed, unit_vectors(1, 8, seed=5))
    index.upsert(changed)
    retriever = backend.keyword_retriever()
    compared = 0
    for query in QUERIES:
        for filters in (None, {"lang": "en"}, {"n": {"$gte": 2}}):
            for k in (3, 10, 100):
                want = index.search(query, k, filters)
                got = retriever.retrieve(query, k, filters)
                assert [h.chunk.id for h in got] == [h.chunk.id for h in want], (query, filters, k)
                assert [h.chunk for h in got] == [h.chunk for h in want]
                assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-5)
                compared += len(want)
    assert compared > 100
    assert sizes(backend) == sizes_from_documents(backend)


def sizes(backend: PostgresBackend) -> list[tuple[int, int, int]]:
    with backend._db.read("test") as cur:
        cur.execute(
            f"SELECT n_chunks, documents, length FROM {backend._db.schema}.sizes ORDER BY 1"
        )
        return [tuple(row) for row in cur.fetchall()]


def sizes_from_documents(backend: PostgresBackend) -> list[tuple[int, int, int]]:
    schema = backend._db.schema
    with backend._db.read("test") as cur:
        cur.execute(
            f"SELECT n_chunks, count(*), sum(length) FROM {schema}.documents GROUP BY 1 ORDER BY 1"
        )
        return [tuple(int(v) for v in row) for row in cur.fetchall()]


def test_a_version_1_kb_is_migrated_and_scores_the_same(
    postgres_url: str, opened: list[PostgresBackend]
) -> None:
    chunks = corpus(seed=3)
    url = postgres_url
    backend = open_kb(url, opened)
    backend.store.upsert(chunks, unit_vectors(len(chunks), 8))
    retriever = backend.keyword_retriever()
    before = [[(h.chunk.id, h.score) for h in retriever.retrieve(q, 10)] for q in QUERIES]
    schema = backend._db.schema
    # Back to schema version 1 as an older ragkit left it.
    with backend._db.write("test") as cur:
        cur.execute(f"DROP TABLE {schema}.sizes")
        cur.execute(
            f"ALTER TABLE {schema}.terms DROP CONSTRAINT terms_pkey, "
            "ADD CONSTRAINT terms_pkey PRIMARY KEY (term, chunk_id)"
        )
        cur.execute(f"DELETE FROM {schema}.schema_version WHERE version > 1")
    reopened = open_kb(url, opened)
    with reopened._db.read("test") as cur:
        cur.execute(f"SELECT max(version) FROM {schema}.schema_version")
        assert cur.fetchone()[0] == 2
    assert sizes(reopened) == sizes_from_documents(reopened)
    again = reopened.keyword_retriever()
    assert [[(h.chunk.id, h.score) for h in again.retrieve(q, 10)] for q in QUERIES] == before


def test_a_failing_batch_leaves_nothing(postgres_url: str, opened: list[PostgresBackend]) -> None:
    backend = open_kb(postgres_url, opened)
    chunks = [make_chunk(f"c{i}", f"alpha bravo {i}", source="a.md") for i in range(50)]
    ids = tuple(c.id for c in chunks)
    batch = Batch(
        begin=[Change("a.md", "h1", "s1", ids, ())],
        upsert=chunks,
        vectors=unit_vectors(50, 8),
        put=[RecordEntry("bad\x00source", "h", ids, "s")],  # refused by the database
        done=["a.md"],
    )
    with pytest.raises(StoreError):
        backend.write(batch)
    assert backend.store.count() == 0
    assert backend.record.count() == 0
    assert backend.keyword_retriever().retrieve("alpha", k=5) == []
    good = Batch(
        begin=[Change("a.md", "h1", "s1", ids, ())], upsert=chunks, vectors=unit_vectors(50, 8)
    )
    backend.write(good)
    backend.write(Batch(done=["a.md"]))
    assert backend.store.count() == 50
    entry = backend.record.get("a.md")
    assert entry is not None
    assert entry.state == "done"
    assert entry.chunk_ids == tuple(sorted(ids))
    assert backend.record.chunk_total() == 50


def test_two_kbs_in_one_database_are_apart(
    postgres_url: str, opened: list[PostgresBackend]
) -> None:
    a = open_kb(postgres_url, opened)
    b = open_kb(postgres_url.replace("&kb=t", "&kb=u"), opened)
    a.store.upsert([make_chunk("x", "alpha only in a")], unit_vectors(1, 8))
    b.store.upsert(
        [make_chunk("x", "bravo only in b"), make_chunk("y", source="y.md")], unit_vectors(2, 16)
    )
    assert a.store.get(["x"])[0].text == "alpha only in a"
    assert b.store.get(["x"])[0].text == "bravo only in b"
    assert (a.store.count(), b.store.count()) == (1, 2)
    assert a.keyword_retriever().retrieve("bravo", k=3) == []
    assert [h.chunk.id for h in b.keyword_retriever().retrieve("bravo", k=3)] == ["x"]
    a.write_manifest(Manifest(embedder_model="m-a", dimension=8, store="postgresql"))
    assert b.read_manifest() is None
    manifest = a.read_manifest()
    assert manifest is not None
    assert (manifest.embedder_model, manifest.dimension) == ("m-a", 8)
    a.store.delete(["x"])
    assert b.store.ids() == ["x", "y"]


def test_a_filter_keeping_two_percent_still_gives_k_hits(
    postgres_server: Any, opened: list[PostgresBackend]
) -> None:
    # In this database the planner may only use the HNSW index, which sees ef_search
    # candidates and so returns few of the rare chunks; the store must notice and
    # search exactly.
    import psycopg

    name = f"filters_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET enable_seqscan = off")
        conn.execute(f"ALTER DATABASE {name} SET enable_bitmapscan = off")
    url = postgres_server.get_uri().replace("/postgres?", f"/{name}?") + "&kb=f&ef_search=20"
    backend = open_kb(url, opened)
    n = 2500
    vectors = unit_vectors(n, 32, seed=3)
    chunks = [make_chunk(f"c{i:04d}", metadata={"rare": i % 50 == 7}) for i in range(n)]
    backend.store.upsert(chunks, vectors)
    query = unit_vectors(1, 32, seed=4)[0]
    hits = backend.store.search(query, k=10, filters={"rare": True})
    rare = [i for i in range(n) if i % 50 == 7]
    expected = sorted(rare, key=lambda i: -float(vectors[i] @ query))[:10]
    assert [h.chunk.id for h in hits] == [chunks[i].id for i in expected]
    assert [h.score for h in hits] == pytest.approx(
        [float(vectors[i] @ query) for i in expected], abs=1e-5
    )
    assert len(backend.store.search(query, k=100, filters={"rare": True})) == 50


def test_writers_serialize_on_the_advisory_lock(
    postgres_url: str, opened: list[PostgresBackend]
) -> None:
    first = open_kb(postgres_url, opened)
    impatient = open_kb(postgres_url + "&lock_wait=0.3", opened)
    patient = open_kb(postgres_url + "&lock_wait=20", opened)
    entered: list[float] = []

    def wait_then_write() -> None:
        with patient.writing():
            entered.append(time.monotonic())

    with first.writing(), first.writing():  # re-entrant
        start = time.monotonic()
        with pytest.raises(KnowledgeBaseLockedError), impatient.writing():
            pass
        assert time.monotonic() - start >= 0.25
        waiter = threading.Thread(target=wait_then_write)
        waiter.start()
        time.sleep(0.5)
        assert entered == []
        released = time.monotonic()
    waiter.join(10)
    assert entered
    assert entered[0] >= released
    with impatient.writing():  # free again
        pass


def test_a_server_restart_under_a_live_backend(
    postgres_server: Any, postgres_url: str, opened: list[PostgresBackend]
) -> None:
    from pgserver._commands import pg_ctl

    backend = open_kb(postgres_url, opened)
    vectors = unit_vectors(20, 8)
    chunks = [make_chunk(f"c{i:02d}", f"word{i} shared") for i in range(20)]
    backend.store.upsert(chunks, vectors)
    with backend.writing():
        pg_ctl(
            ["-w", "-m", "fast", "restart"],
            pgdata=postgres_server.pgdata,
            user=postgres_server.system_user,
        )
        with pytest.raises(StoreError, match=r"lock was lost|unreachable") as info:
            backend.write(Batch(delete=["c00"]))
        assert "password" not in str(info.value)
    assert backend.store.count() == 20  # nothing was written
    # The pool checks connections before handing them out: the first call after the
    # restart either reconnects or, if it races the restart, says what happened.
    errors: list[str] = []
    try:
        first = backend.store.search(vectors[3], k=1)
    except StoreError as exc:
        errors.append(str(exc))
        first = backend.store.search(vectors[3], k=1)
    assert all("unreachable or restarted" in e for e in errors)
    assert first[0].chunk == chunks[3]
    assert [h.chunk.id for h in backend.keyword_retriever().retrieve("word7", k=1)] == ["c07"]
    with backend.writing():
        backend.write(Batch(delete=["c00"]))
    assert backend.store.count() == 19


def test_reading_pins_one_snapshot(postgres_url: str, opened: list[PostgresBackend]) -> None:
    reader = open_kb(postgres_url, opened)
    writer = open_kb(postgres_url, opened)
    writer.store.upsert([make_chunk("a", "alpha")], unit_vectors(1, 8))
    with reader.reading():
        assert reader.store.count() == 1
        writer.write(Batch(upsert=[make_chunk("b", "alpha bravo")], vectors=unit_vectors(1, 8, 1)))
        assert reader.store.count() == 1
        assert [h.chunk.id for h in reader.keyword_retriever().retrieve("alpha", k=5)] == ["a"]
    assert reader.store.count() == 2
    assert len(reader.keyword_retriever().retrieve("alpha", k=5)) == 2


def test_location_has_no_password(postgres_server: Any) -> None:
    url = postgres_server.get_uri().replace("postgres:@", "postgres:s3cret@") + "&kb=pw"
    backend = PostgresBackend(settings(url))  # trust auth: the password is ignored
    try:
        assert "s3cret" not in backend.location
        assert "s3cret" not in repr(backend)
        assert backend.name == "postgresql"
    finally:
        backend.close()


def last_analyze(backend: PostgresBackend) -> dict[str, Any]:
    with backend._db.read("test") as cur:
        cur.execute(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE schemaname = %s",
            (backend._db.schema,),
        )
        return dict(cur.fetchall())


def test_a_kb_that_grew_is_analyzed_and_one_that_did_not_is_not(
    postgres_url: str, opened: list[PostgresBackend]
) -> None:
    backend = open_kb(postgres_url, opened)
    rng = np.random.default_rng(7)
    chunks = [
        make_chunk(f"c{i:05d}", " ".join(rng.choice(WORDS, 12)), source=f"s{i // 3}.md")
        for i in range(1500)
    ]
    backend.write(Batch(upsert=chunks, vectors=unit_vectors(len(chunks), 8)))
    # The statistics collector publishes a commit's counts up to a second later.
    deadline = time.monotonic() + 10
    while last_analyze(backend).get("terms") is None and time.monotonic() < deadline:
        time.sleep(0.3)
        backend._db.analyze_if_grown()
    analyzed = last_analyze(backend)
    assert analyzed["terms"] is not None
    assert analyzed["chunks"] is not None
    assert analyzed["documents"] is not None
    # Ten more chunks is not worth another ANALYZE.
    more = [make_chunk(f"d{i}", "pool timeout", source="more.md") for i in range(10)]
    backend.write(Batch(upsert=more, vectors=unit_vectors(len(more), 8, seed=2)))
    time.sleep(1.2)
    backend._db.analyze_if_grown()
    assert last_analyze(backend) == analyzed
