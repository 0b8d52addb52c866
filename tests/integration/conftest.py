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
def milvus_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the session's Milvus Lite server (its data in ``data/``)."""
    return tmp_path_factory.mktemp("milvus")


@pytest.fixture(scope="session")
def milvus_url(milvus_folder: Path) -> Iterator[str]:
    """``milvus://127.0.0.1:<port>`` of one real Milvus Lite server per test session
    (``milvus_server.py``); skips when Milvus Lite is not installed or does not start."""
    from milvus_server import MilvusUnavailableError, milvus_lite_server

    with ExitStack() as stack:
        try:
            url = stack.enter_context(milvus_lite_server(milvus_folder))
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


# -- ragkit server (uvicorn on loopback) -----------------------------------------------


@pytest.fixture(scope="session")
def ragkit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real uvicorn on 127.0.0.1 serving a root of kbs (FakeEmbedder, memory stores,
    a slow streaming generator), with keys of two tenants. Yields a namespace: ``url``,
    ``keys`` (``acme_read``, ``acme_write``, ``acme_admin``, ``beta_admin``),
    ``generator`` (the :class:`~ragkit.server.testing.SlowStreamingGenerator`)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from types import SimpleNamespace

    from ragkit.backends.keys import create_key
    from ragkit.backends.local_catalog import LocalCatalog
    from ragkit.server import ServerSettings, create_app
    from ragkit.server.testing import SlowStreamingGenerator, fake_opener, running_server

    root = tmp_path_factory.mktemp("ragkit-server")
    catalog = LocalCatalog(root)
    keys = {}
    for tenant, scopes in (("acme", ("read",)), ("acme", ("write",)), ("acme", ("admin",)),
                           ("beta", ("admin",))):  # fmt: skip
        _, keys[f"{tenant}_{scopes[0]}"] = create_key(catalog, tenant, scopes)
    generator = SlowStreamingGenerator()
    settings = ServerSettings(kb=str(root), rate_limit=0, sse_heartbeat=0.2)
    app = create_app(settings, catalog=catalog, open_rag=fake_opener(generator))
    with running_server(app) as url:
        yield SimpleNamespace(url=url, keys=keys, generator=generator, root=root)
