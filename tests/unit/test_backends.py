"""The backend contract's local side, URL parsing, and the indexing import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from ragkit import RAG
from ragkit.backends import (
    Batch,
    Change,
    KnowledgeBaseBackend,
    LocalSettings,
    MilvusSettings,
    PostgresSettings,
    RecordEntry,
    open_backend,
    parse_location,
)
from ragkit.backends.local import LocalBackend
from ragkit.backends.urls import redact
from ragkit.errors import ConfigurationError
from ragkit.retrieval import KeywordIndex
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, chunk_id

SRC = Path(__file__).resolve().parents[2] / "src" / "ragkit"


def _chunk(source: str, text: str, start: int = 0) -> Chunk:
    return Chunk(
        id=chunk_id(source, start, text),
        text=text,
        source=source,
        document_id=source,
        start=start,
        end=start + len(text),
    )


# -- locations -----------------------------------------------------------------------


def test_a_folder_or_nothing_is_local(tmp_path: Path) -> None:
    assert parse_location(None) == LocalSettings(None)
    assert parse_location(str(tmp_path)) == LocalSettings(tmp_path)
    assert parse_location(tmp_path) == LocalSettings(tmp_path)
    assert parse_location("relative/kb") == LocalSettings(Path("relative/kb"))


def test_a_postgres_url_keeps_libpq_parameters_and_takes_ragkits() -> None:
    settings = parse_location(
        "postgresql://app:s3cret@db.internal:5433/docs?kb=handbook&sslmode=require"
        "&pool_max=4&lock_wait=5"
    )
    assert isinstance(settings, PostgresSettings)
    assert settings.kb == "handbook"
    assert settings.pool_max == 4
    assert settings.lock_wait == 5.0
    assert settings.dsn == "postgresql://app:s3cret@db.internal:5433/docs?sslmode=require"
    assert "s3cret" not in settings.location
    assert settings.location == "postgresql://app@db.internal:5433/docs?sslmode=require&kb=handbook"
    spaced = parse_location("postgresql://h/db?options=-c%20statement_timeout%3D5000&kb=x")
    assert spaced.dsn == "postgresql://h/db?options=-c%20statement_timeout%3D5000"  # type: ignore[union-attr]
    other = parse_location("postgresql://h/db?kb=docs&tenant=acme")
    assert other.namespace == "acme__docs"  # type: ignore[union-attr]
    assert other.location == "postgresql://h/db?kb=docs&tenant=acme"
    assert parse_location("postgres://h/db").kb == "default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?kb=Bad-Name", "kb 'Bad-Name'"),
        ("postgresql://h/db?pool_min=5&pool_max=2", "pool_min is above pool_max"),
        ("postgresql://u:pw@h/db?lock_wait=soon", "lock_wait must be a number"),
        ("milvus://u:tok@h:19530", "MILVUS_TOKEN"),
        ("milvus://h:1?collection=x&colection=y", "unknown parameters colection"),
        ("mysql://h/db", "unknown knowledge-base URL scheme 'mysql'"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_location(url)
    assert "pw" not in str(caught.value).replace("pool", "")
    assert ":tok@" not in str(caught.value)


def test_a_milvus_url_takes_its_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")
    settings = parse_location("milvus://127.0.0.1:19531?collection=docs")
    assert isinstance(settings, MilvusSettings)
    assert settings.uri == "http://127.0.0.1:19531"
    assert settings.collection == "docs"
    assert settings.token == "root:Milvus"
    assert "Milvus" not in repr(settings).replace("MilvusSettings", "")
    assert settings.location == "milvus://127.0.0.1:19531?collection=docs"
    assert parse_location("milvus+https://m.example").uri == "https://m.example:19530"  # type: ignore[union-attr]


def test_redact_drops_only_the_password() -> None:
    assert redact("postgresql://u:p@h:1/db?x=1") == "postgresql://u@h:1/db?x=1"
    assert redact("postgresql://h/db") == "postgresql://h/db"


def test_a_store_kind_is_refused_for_a_database() -> None:
    with pytest.raises(ConfigurationError, match="applies to a kb folder"):
        open_backend("postgresql://127.0.0.1:1/db?kb=x", store="faiss")
    with pytest.raises(ConfigurationError, match="applies to a kb folder"):
        RAG("milvus://127.0.0.1:1", store="chroma", embedder=FakeEmbedder())


# -- the local backend -----------------------------------------------------------------


def test_the_local_backend_fits_the_contract(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "kb")
    assert isinstance(backend, KnowledgeBaseBackend)
    assert isinstance(backend, LocalBackend)
    assert backend.name == "chroma"
    assert backend.location == str(tmp_path / "kb")
    backend.close()


def test_a_batch_writes_chunks_keyword_and_record_together(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, keyword=KeywordIndex())
    embedder = FakeEmbedder()
    old = [_chunk("a.txt", "alpha bravo"), _chunk("a.txt", "charlie delta", 12)]
    backend.write(
        Batch(
            begin=[Change("a.txt", "h1", "s", tuple(sorted(c.id for c in old)), ())],
            upsert=old,
            vectors=embedder.embed_documents([c.text for c in old]),
            done=["a.txt"],
        )
    )
    entry = backend.record.get("a.txt")
    assert entry is not None
    assert entry.state == "done"
    assert set(entry.chunk_ids) == {c.id for c in old}
    assert backend.keyword is not None
    assert backend.keyword.ids() == backend.store.ids() == sorted(c.id for c in old)

    new = [_chunk("a.txt", "echo foxtrot")]
    backend.write(
        Batch(
            begin=[Change("a.txt", "h2", "s", (new[0].id,), tuple(c.id for c in old))],
            upsert=new,
            vectors=embedder.embed_documents(["echo foxtrot"]),
            delete=[c.id for c in old],
            done=["a.txt"],
        )
    )
    assert backend.store.ids() == backend.keyword.ids() == [new[0].id]
    assert [h.chunk.id for h in backend.keyword.search("alpha", 3)] == []
    assert backend.record.get("a.txt") == RecordEntry("a.txt", "h2", (new[0].id,), "s")

    backend.write(Batch(begin=[Change("a.txt", "h2", "", (), (new[0].id,))],
                        delete=[new[0].id], removed=["a.txt"]))  # fmt: skip
    assert backend.store.count() == backend.record.count() == 0
    backend.close()


def test_reindex_restores_keyword_entries_from_the_store() -> None:
    keyword = KeywordIndex()
    backend = LocalBackend(keyword=keyword)
    chunk = _chunk("b.md", "golf hotel india")
    backend.store.upsert([chunk], FakeEmbedder().embed_documents([chunk.text]))
    assert keyword.count() == 0  # written to the store behind the backend's back
    backend.write(Batch(reindex=[chunk.id]))
    assert [h.chunk for h in keyword.search("hotel", 1)] == [chunk]


def test_a_batch_needs_a_vector_per_upserted_chunk() -> None:
    chunk = _chunk("c.txt", "juliet")
    with pytest.raises(ValueError, match="one row per upserted chunk"):
        Batch(upsert=[chunk])
    with pytest.raises(ValueError, match="one row per upserted chunk"):
        Batch(upsert=[chunk], vectors=np.zeros((2, 4), np.float32))


def test_rag_reports_where_its_kb_lives(tmp_path: Path) -> None:
    with RAG(tmp_path / "kb", embedder=FakeEmbedder(), store="memory") as rag:
        assert rag.location == str(tmp_path / "kb")
        assert rag.stats()["location"] == str(tmp_path / "kb")
        assert isinstance(rag.backend, LocalBackend)


# -- the shape of indexing/ ------------------------------------------------------------


def _ragkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ragkit"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("ragkit"))
    return out


def test_indexing_modules_import_one_way() -> None:
    """Nothing below indexer.py imports it back (the circle the backend contract broke),
    and no indexing module reaches into a backend's private files."""
    for path in sorted((SRC / "indexing").glob("*.py")):
        imports = _ragkit_imports(path)
        if path.name not in ("indexer.py", "__init__.py"):
            assert "ragkit.indexing.indexer" not in imports, path.name
            assert "ragkit.indexing" not in imports, path.name
        private = {m for m in imports if m.startswith("ragkit.backends.") and "._" in m}
        assert not private, f"{path.name} imports {private}"
        assert not {m for m in imports if m.startswith("ragkit.backends.local")}, path.name
