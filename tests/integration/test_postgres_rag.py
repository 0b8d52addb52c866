"""RAG on PostgreSQL, several processes at once: readers never see half a batch, two
writers serialize, SIGKILLed ingests converge to a clean build, a server restart is
survived, an embedder mismatch is a clear error, hybrid finds what only BM25 can."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ragkit import RAG
from ragkit.errors import EmbedderMismatchError, StoreError
from ragkit.testing import FakeEmbedder

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
SEED = int(os.environ.get("RAGKIT_CRASH_SEED", "20261206"))
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]

SCRIPT = textwrap.dedent(
    """
    import sys
    from ragkit import RAG
    from ragkit.testing import FakeEmbedder

    url, folder, mode, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with RAG(url, embedder=FakeEmbedder(32)) as rag:
        rag.indexer.batch_size = batch
        print("ready", flush=True)
        getattr(rag, mode)(folder)
    print("done", flush=True)
    """
)


def spawn(url: str, folder: Path, mode: str = "add", batch: int = 4) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-c", SCRIPT, url, str(folder), mode, str(batch)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def write_files(folder: Path, n: int, rng: random.Random, words: int = 60) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lines = [" ".join(rng.choices(WORDS, k=12)) for _ in range(words // 12)]
        (folder / f"f{i:02d}.txt").write_text(f"File {i}.\n\n" + "\n\n".join(lines))


def new_kb(url: str) -> str:
    return url.rsplit("&kb=", 1)[0] + f"&kb=r{uuid.uuid4().hex[:12]}&connect_timeout=3"


def open_rag(url: str) -> RAG:
    return RAG(url, embedder=FakeEmbedder(32))


def snapshot(rag: RAG) -> dict[str, Any]:
    """Everything a kb holds, read straight from its tables (terms and totals included)."""
    db = rag.backend._db  # type: ignore[attr-defined]
    tables = {
        "chunks": "SELECT id, document_id, length, fields::text, chunk FROM {s}.chunks ORDER BY id",
        "terms": "SELECT term, chunk_id, document_id, tf, length FROM {s}.terms ORDER BY 1, 2",
        "documents": "SELECT * FROM {s}.documents ORDER BY 1",
        "record": "SELECT source, content_hash, chunk_ids, state FROM {s}.record ORDER BY 1",
    }
    out = {}
    with db.read("test snapshot") as cur:
        for name, sql in tables.items():
            cur.execute(sql.format(s=db.schema))
            out[name] = cur.fetchall()
    return out


def assert_clean(url: str, folder: Path) -> None:
    """``url``'s kb, once opened and synced, holds exactly what a clean build does."""
    with open_rag(url) as rag:
        rag.sync(folder)
        assert rag.record.pending() == []
        got = snapshot(rag)
    with open_rag(new_kb(url)) as clean:
        clean.add(folder)
        want = snapshot(clean)
    for name in ("chunks", "terms", "documents"):
        assert got[name] == want[name], name
    assert [r[:3] for r in got["record"]] == [r[:3] for r in want["record"]]


def test_a_reader_never_sees_half_a_batch(postgres_url: str, tmp_path: Path) -> None:
    write_files(tmp_path / "docs", 30, random.Random(1))
    with open_rag(postgres_url) as rag:
        writer = spawn(postgres_url, tmp_path / "docs", batch=3)
        seen = set()
        while writer.poll() is None:
            with rag.backend.reading():
                count, total = rag.store.count(), rag.record.chunk_total()
                pending = rag.record.pending()
                hits = rag.retrieve("alpha bravo", k=3)
            assert count == total
            assert pending == []
            assert len(hits) == min(3, count)
            seen.add(count)
        assert writer.wait() == 0
        assert len(seen) > 2, "the reader saw the kb grow batch by batch"
        assert rag.store.count() == rag.record.chunk_total() > max(seen - {rag.store.count()})
        assert len(rag.record.sources()) == 30


def test_two_writer_processes_serialize(postgres_url: str, tmp_path: Path) -> None:
    rng = random.Random(2)
    write_files(tmp_path / "one", 12, rng)
    write_files(tmp_path / "two", 12, rng)
    writers = [spawn(postgres_url, tmp_path / name) for name in ("one", "two")]
    assert [w.wait(60) for w in writers] == [0, 0]
    with open_rag(postgres_url) as rag:
        entries = rag.record.entries()
        assert len(entries) == 24
        ids = [i for e in entries.values() for i in e.chunk_ids]
        assert len(ids) == len(set(ids)) == rag.store.count()
        assert sorted(rag.store.ids()) == sorted(ids)
        got = snapshot(rag)
    with open_rag(new_kb(postgres_url)) as clean:
        clean.add(tmp_path / "one", tmp_path / "two")
        want = snapshot(clean)
    assert got["chunks"] == want["chunks"]
    assert got["terms"] == want["terms"]


def test_sigkilled_ingests_converge_to_a_clean_build(postgres_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    folder = tmp_path / "docs"
    write_files(folder, 24, rng)
    interrupted = 0
    for trial in range(12):
        files = sorted(folder.iterdir())
        for path in rng.sample(files, 3):  # edits
            path.write_text(
                path.read_text() + f"\n\nEdit {trial} " + " ".join(rng.choices(WORDS, k=20))
            )
        rng.choice(files).unlink()
        (folder / f"new{trial}.txt").write_text(" ".join(rng.choices(WORDS, k=80)))
        writer = spawn(postgres_url, folder, mode="sync", batch=1)
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.stdout is not None
        interrupted += "done" not in writer.stdout.read()
        if trial % 3 == 2:
            assert_clean(postgres_url, folder)
    assert interrupted >= 6, "most kills land in the middle of the sync"
    assert_clean(postgres_url, folder)
    assert interrupted >= 6, "most kills land in the middle of the sync"


def test_a_database_restart_under_a_running_rag(
    postgres_server: Any, postgres_url: str, tmp_path: Path
) -> None:
    from pgserver._commands import pg_ctl

    write_files(tmp_path / "docs", 5, random.Random(3))
    with open_rag(postgres_url) as rag:
        rag.add(tmp_path / "docs")
        before = rag.retrieve("charlie delta", k=3)
        pgdata, user = postgres_server.pgdata, postgres_server.system_user
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=user)
        errors = []
        try:
            after = rag.retrieve("charlie delta", k=3)
        except StoreError as exc:
            errors.append(str(exc))
            after = rag.retrieve("charlie delta", k=3)
        assert all("restarted" in e and "password" not in e for e in errors)
        assert [h.chunk.id for h in after] == [h.chunk.id for h in before]
        (tmp_path / "docs" / "late.txt").write_text("A late file about kilo lima.")
        report = rag.add(tmp_path / "docs")
        assert len(report.added) == 1
        assert rag.store.count() == rag.record.chunk_total()


class _SameName(FakeEmbedder):
    @property
    def model_id(self) -> str:
        return "fake-hash-32"


def test_an_embedder_mismatch_is_a_clear_error(postgres_url: str, tmp_path: Path) -> None:
    write_files(tmp_path / "docs", 2, random.Random(4))
    with open_rag(postgres_url) as rag:
        rag.add(tmp_path / "docs")
    with pytest.raises(EmbedderMismatchError, match="fake-hash-32"):
        RAG(postgres_url, embedder=FakeEmbedder(16))
    (tmp_path / "docs" / "more.txt").write_text("more text")
    with (
        RAG(postgres_url, embedder=_SameName(16)) as rag,
        pytest.raises(EmbedderMismatchError, match="32-dimensional"),
    ):
        rag.add(tmp_path / "docs")


def test_hybrid_finds_an_identifier_only_keyword_search_knows(
    postgres_url: str, tmp_path: Path
) -> None:
    write_files(tmp_path / "docs", 20, random.Random(5))
    (tmp_path / "docs" / "errors.txt").write_text(
        "Troubleshooting. The upload fails with ERR_QZ7_QUOTA when the bucket is full."
    )
    with open_rag(postgres_url) as rag:
        assert rag.retrieval == "hybrid"
        rag.add(tmp_path / "docs")
        hits = rag.retrieve("ERR_QZ7_QUOTA", k=1)
        assert hits[0].chunk.source.endswith("errors.txt")
