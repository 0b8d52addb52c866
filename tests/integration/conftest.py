"""Fixtures of the integration tests that need servers of their own."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

# -- Milvus ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def milvus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``milvus://127.0.0.1:<port>`` of one real Milvus Lite server per test session
    (``milvus_server.py``); skips when Milvus Lite is not installed or does not start."""
    from milvus_server import MilvusUnavailableError, milvus_lite_server

    with ExitStack() as stack:
        try:
            url = stack.enter_context(milvus_lite_server(tmp_path_factory.mktemp("milvus")))
        except MilvusUnavailableError as exc:
            pytest.skip(str(exc))
        yield url


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL 16 with pgvector (the ``pgserver`` package) per test session,
    on a Unix socket in a temporary folder; stopped and deleted at the end.

    The folder is not under pytest's ``tmp_path`` tree: run as root, pgserver runs the
    server as the user ``pgserver``, and pytest keeps its tree private (0700).
    """
    pgserver = pytest.importorskip("pgserver", reason="pgserver (PostgreSQL 16) not installed")
    pytest.importorskip("psycopg", reason="psycopg not installed")
    folder = Path(tempfile.mkdtemp(prefix="ragkit-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A ``postgresql://`` URL of a new, empty kb (a schema of its own) on that server."""
    return f"{postgres_server.get_uri()}&kb=t{uuid.uuid4().hex[:16]}&connect_timeout=3"
