"""Two ragkit server processes on one PostgreSQL database share keys, kbs, documents and
jobs, and keep tenants apart.

Each server is its own Python process running uvicorn on 127.0.0.1 (a free port),
started and stopped here; the processes share nothing but the database. They open kbs
with the fake embedder and the extractive generator (``_SERVER``), so they start in
seconds; the catalog, the keys, the jobs and the kbs are the real PostgreSQL ones.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

# One server process: the app over every kb of the database, kbs opened with fakes.
_SERVER = """
import sys

import uvicorn

from ragkit.rag import RAG
from ragkit.server import ServerSettings, create_app
from ragkit.generation import ExtractiveGenerator
from ragkit.testing import FakeEmbedder


def open_rag(info):
    return RAG(info.settings, tenant=info.tenant, embedder=FakeEmbedder(),
               generator=ExtractiveGenerator())


url, port = sys.argv[1], int(sys.argv[2])
settings = ServerSettings(kb=url, port=port, rate_limit=0, job_heartbeat=0.5,
                          job_stale_after=20.0)
app = create_app(settings, open_rag=open_rag)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


class _Server:
    """A server process and its base URL."""

    def __init__(self, database: str, log: Path) -> None:
        from ragkit.server.testing import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVER, database, str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not get ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # uvicorn shuts the app down

    def wait_stopped(self) -> None:
        if self.process.returncode is None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def database(postgres_server: Any) -> str:
    return f"{postgres_server.get_uri()}&connect_timeout=3"


@pytest.fixture
def servers(database: str, tmp_path: Path) -> Iterator[tuple[_Server, _Server]]:
    started = [_Server(database, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()
        for server in started:
            server.wait_stopped()


def _cli_key(database: str, tenant: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "keys", "create", "--kb", database,
         "--tenant", tenant, "--scopes", "read,write,admin", "--name", "test"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait_job(url: str, key: str, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/v1/jobs/{job_id}", headers=_auth(key), timeout=10)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_two_server_processes_share_one_postgres_kb(
    database: str, servers: tuple[_Server, _Server]
) -> None:
    from ragkit.backends.keys import create_key
    from ragkit.backends.postgres import PostgresCatalog
    from ragkit.backends.urls import PostgresSettings, parse_location

    a, b = servers
    acme, globex = "a" + uuid.uuid4().hex[:10], "g" + uuid.uuid4().hex[:10]
    key = _cli_key(database, acme)  # while the servers start
    settings = parse_location(database)
    assert isinstance(settings, PostgresSettings)
    with PostgresCatalog(settings) as catalog:
        _, other = create_key(catalog, globex, ["read", "write", "admin"])
    a.wait_ready()
    b.wait_ready()

    # The key made by the CLI works on both; the kb made through one is seen by the other.
    for server in (a, b):
        listed = httpx.get(f"{server.url}/v1/kbs", headers=_auth(key), timeout=10)
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == []
    made = httpx.post(f"{a.url}/v1/kbs", json={"name": "docs"}, headers=_auth(key), timeout=30)
    assert made.status_code == 201, made.text
    again = httpx.post(f"{b.url}/v1/kbs", json={"name": "docs"}, headers=_auth(key), timeout=30)
    assert again.status_code == 409, again.text

    # A document uploaded through A; its job's status read on B.
    text = "The lighthouse keeper logs every passing ship in a blue ledger."
    body = {"documents": [{"source": "lighthouse.txt", "text": text}]}
    headers = {**_auth(key), "Idempotency-Key": "upload-1"}
    accepted = httpx.post(f"{a.url}/v1/kbs/docs/documents/text", json=body, headers=headers,
                          timeout=30)  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    job = _wait_job(b.url, key, job_id)
    assert job["state"] == "succeeded", job
    assert job["kb"] == "docs"
    # The same Idempotency-Key sent to B answers A's job.
    replay = httpx.post(f"{b.url}/v1/kbs/docs/documents/text", json=body, headers=headers,
                        timeout=30)  # fmt: skip
    assert replay.status_code == 202, replay.text
    assert replay.json()["id"] == job_id

    # Found through B: search and ask.
    found = httpx.post(f"{b.url}/v1/kbs/docs/search", json={"query": "lighthouse ledger ships"},
                       headers=_auth(key), timeout=30)  # fmt: skip
    assert found.status_code == 200, found.text
    hits = found.json()["data"]
    assert [h["chunk"]["source"] for h in hits] == ["lighthouse.txt"]
    assert hits[0]["chunk"]["text"] == text
    # Most of the text's words: the fake embedder's bag of words passes the relevance gate.
    question = "Does the lighthouse keeper log every passing ship in a blue ledger?"
    asked = httpx.post(f"{b.url}/v1/kbs/docs/ask", json={"question": question},
                       headers=_auth(key), timeout=30)  # fmt: skip
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert [c["chunk"]["source"] for c in answer["contexts"]] == ["lighthouse.txt"]
    assert "lighthouse keeper" in answer["text"]
    assert [c["source"] for c in answer["citations"]] == ["lighthouse.txt"]

    # A file uploaded through B is found through A.
    files = {"files": ("harbor.md", b"# Harbor\n\nThe harbor master rings a brass bell at dawn.")}
    upload = httpx.post(f"{b.url}/v1/kbs/docs/documents", files=files, headers=_auth(key),
                        timeout=30)  # fmt: skip
    assert upload.status_code == 202, upload.text
    assert _wait_job(a.url, key, upload.json()["id"])["state"] == "succeeded"
    found = httpx.post(f"{a.url}/v1/kbs/docs/search", json={"query": "harbor brass bell"},
                       headers=_auth(key), timeout=30)  # fmt: skip
    assert found.status_code == 200, found.text
    assert "harbor.md" in [h["chunk"]["source"] for h in found.json()["data"]]

    # Another tenant's key: the kb and the job are not found, on either server.
    for server in (a, b):
        for method, path, payload in (
            ("GET", "/v1/kbs/docs", None),
            ("POST", "/v1/kbs/docs/search", {"query": "lighthouse"}),
            ("POST", "/v1/kbs/docs/ask", {"question": "Who logs ships?"}),
            ("GET", f"/v1/jobs/{job_id}", None),
        ):
            denied = httpx.request(method, server.url + path, json=payload,
                                   headers=_auth(other), timeout=30)  # fmt: skip
            assert denied.status_code == 404, (server.url, path, denied.text)
        listed = httpx.get(f"{server.url}/v1/kbs", headers=_auth(other), timeout=10)
        assert listed.json()["data"] == []

    # A new key sent to both servers at once: the database keeps one job for it.
    race = {"documents": [{"source": "buoy.txt", "text": "The red buoy marks the reef."}]}
    race_headers = {**_auth(key), "Idempotency-Key": "upload-race"}
    start = threading.Barrier(6)
    answers: list[httpx.Response] = []

    def post(url: str) -> None:
        start.wait(timeout=30)
        answers.append(httpx.post(f"{url}/v1/kbs/docs/documents/text", json=race,
                                  headers=race_headers, timeout=30))  # fmt: skip

    posts = [threading.Thread(target=post, args=(s.url,)) for s in (a, b, a, b, a, b)]
    for thread in posts:
        thread.start()
    for thread in posts:
        thread.join(timeout=60)
    assert [r.status_code for r in answers] == [202] * 6, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1, [r.json() for r in answers]
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in answers) == 1
    assert _wait_job(b.url, key, answers[0].json()["id"])["state"] == "succeeded"

    # A key revoked in the database stops working on both at once.
    with PostgresCatalog(settings) as catalog:
        assert catalog.revoke_key(key.split("_")[1])
    for server in (a, b):
        refused = httpx.get(f"{server.url}/v1/kbs", headers=_auth(key), timeout=10)
        assert refused.status_code == 401, refused.text
