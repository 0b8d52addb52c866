"""The HTTP API in process (plain JSON endpoints): auth, tenants, uploads and jobs, limits.

Streaming, disconnects and the Python client run against a real uvicorn in
``tests/integration/test_server_live.py``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from ragkit.backends.keys import create_key
from ragkit.backends.local_catalog import LocalCatalog
from ragkit.server import ServerSettings, create_app
from ragkit.server.testing import fake_opener
from ragkit.testing import FakeEmbedder
from ragkit.types import document_id

REPO = Path(__file__).resolve().parents[2]
HANDBOOK = (
    "Refunds are paid within 14 days of the return. "
    "The warehouse in Lyon ships orders every weekday."
)


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    catalog: LocalCatalog
    root: Path

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def wait(self, job_id: str, who: str = "acme_admin", timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/v1/jobs/{job_id}", headers=self.h(who)).json()
            if job["state"] not in ("queued", "running"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.02)


def _make(tmp_path: Path, open_rag: Any = None, **settings: Any) -> Iterator[Api]:
    root = tmp_path / "kbs"
    catalog = LocalCatalog(root)
    keys = {}
    for tenant in ("acme", "beta"):
        for scope in ("read", "write", "admin"):
            _, keys[f"{tenant}_{scope}"] = create_key(catalog, tenant, (scope,))
    revoked, keys["revoked"] = create_key(catalog, "acme", ("admin",))
    catalog.revoke_key(revoked.id)
    options: dict[str, Any] = {"kb": str(root), "rate_limit": 0, **settings}
    app = create_app(ServerSettings(**options), catalog=catalog, open_rag=open_rag or fake_opener())
    with TestClient(app) as client:
        yield Api(client, keys, catalog, tmp_path)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    (tmp_path / "shared").mkdir()
    yield from _make(tmp_path, sync_roots=(tmp_path / "shared",))


def _kb_with_text(api: Api, tenant: str = "acme", name: str = "handbook") -> dict[str, Any]:
    r = api.client.post("/v1/kbs", json={"name": name}, headers=api.h(f"{tenant}_admin"))
    assert r.status_code == 201, r.text
    r = api.client.post(
        f"/v1/kbs/{name}/documents/text",
        json={"documents": [{"text": HANDBOOK, "source": "handbook.txt", "metadata": {"v": 1}}]},
        headers=api.h(f"{tenant}_write"),
    )
    assert r.status_code == 202, r.text
    job = api.wait(r.json()["id"], f"{tenant}_admin")
    assert job["state"] == "succeeded", job
    return job


# -- auth ------------------------------------------------------------------------------


def test_no_bad_or_revoked_key_is_401_with_a_challenge_and_no_key_in_the_body(api: Api) -> None:
    cases = {
        "missing": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer nonsense-key"},
        "wrong secret": {"Authorization": "Bearer " + api.keys["acme_read"][:-4] + "AAAA"},
        "revoked": api.h("revoked"),
    }
    for label, headers in cases.items():
        r = api.client.get("/v1/kbs", headers=headers)
        assert r.status_code == 401, label
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), label
        assert r.json()["error"]["code"] == "unauthorized", label
        for value in headers.values():
            assert value.split(" ")[-1] not in r.text, label


def test_a_key_without_the_scope_is_403_and_scopes_nest(api: Api) -> None:
    r = api.client.post("/v1/kbs", json={"name": "x"}, headers=api.h("acme_write"))
    assert r.status_code == 403
    assert "admin" in r.json()["error"]["message"]
    assert api.keys["acme_write"] not in r.text
    _kb_with_text(api)
    upload = {"documents": [{"text": "a b c", "source": "a.txt"}]}
    r = api.client.post("/v1/kbs/handbook/documents/text", json=upload, headers=api.h("acme_read"))
    assert r.status_code == 403
    # admin includes write and read
    r = api.client.post(
        "/v1/kbs/handbook/search", json={"query": "refunds"}, headers=api.h("acme_admin")
    )
    assert r.status_code == 200


def test_healthz_readyz_and_metrics_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").status_code == 200
    api.client.get("/v1/kbs")  # a 401, counted
    text = api.client.get("/metrics").text
    assert "# TYPE ragkit_http_requests_total counter" in text
    assert 'ragkit_http_requests_total{method="GET",route="/v1/kbs",status="401"} 1' in text
    assert "ragkit_http_request_duration_seconds_bucket" in text


# -- kbs, upload, search ---------------------------------------------------------------


def test_upload_answers_202_and_the_job_really_indexes(api: Api) -> None:
    job = _kb_with_text(api)
    assert job["report"]["added"] == ["handbook.txt"]
    assert job["errors"] == []
    r = api.client.post(
        "/v1/kbs/handbook/search",
        json={"query": "when are refunds paid", "k": 2},
        headers=api.h("acme_read"),
    )
    assert r.status_code == 200, r.text
    hit = r.json()["data"][0]
    chunk = hit["chunk"]
    assert chunk["source"] == "handbook.txt"
    assert HANDBOOK[chunk["start"] : chunk["end"]] == chunk["text"]  # exact location
    assert chunk["metadata"]["v"] == 1
    assert chunk["document_id"] == document_id("handbook.txt")


def test_multipart_upload_with_metadata_and_per_file_errors(api: Api) -> None:
    api.client.post("/v1/kbs", json={"name": "files"}, headers=api.h("acme_admin"))
    files = [
        (
            "files",
            ("notes.md", b"# Notes\n\nThe Lyon warehouse ships on weekdays.\n", "text/plain"),
        ),
        ("files", ("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf")),
    ]
    r = api.client.post(
        "/v1/kbs/files/documents",
        files=files,
        data={"metadata": json.dumps({"team": "ops"})},
        headers=api.h("acme_write"),
    )
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/jobs/{r.json()['id']}"
    job = api.wait(r.json()["id"])
    assert job["state"] == "partial", job
    assert [e["source"] for e in job["errors"]] == ["broken.pdf"]
    assert job["report"]["added"] == ["notes.md"]
    docs = api.client.get("/v1/kbs/files/documents", headers=api.h("acme_read")).json()["data"]
    assert [d["source"] for d in docs] == ["notes.md"]
    one = api.client.get(
        f"/v1/kbs/files/documents/{docs[0]['id']}?chunks=true", headers=api.h("acme_read")
    ).json()
    assert one["chunk_count"] == len(one["chunks"]) >= 1
    assert one["chunks"][0]["metadata"]["team"] == "ops"


def test_idempotency_key_returns_the_same_job_and_refuses_other_content(api: Api) -> None:
    _kb_with_text(api)
    body = {"documents": [{"text": "Parcels leave Lyon at noon.", "source": "lyon.txt"}]}
    headers = {**api.h("acme_write"), "Idempotency-Key": "upload-42"}
    first = api.client.post("/v1/kbs/handbook/documents/text", json=body, headers=headers)
    again = api.client.post("/v1/kbs/handbook/documents/text", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    api.wait(first.json()["id"])
    later = api.client.post("/v1/kbs/handbook/documents/text", json=body, headers=headers)
    assert later.json()["id"] == first.json()["id"]  # also once the job finished
    other = {"documents": [{"text": "Something else.", "source": "lyon.txt"}]}
    r = api.client.post("/v1/kbs/handbook/documents/text", json=other, headers=headers)
    assert r.status_code == 409


class _BlindLookup(LocalCatalog):
    """A catalog whose look-up of a key always misses, as when another worker adds the
    job for the key between this worker's look-up and its own add."""

    def find_job(self, tenant: str, kb: str, idempotency_key: str) -> Any:
        return None


def test_a_key_taken_by_another_worker_answers_its_job(tmp_path: Path) -> None:
    root = tmp_path / "kbs"
    catalog = _BlindLookup(root)
    _, admin = create_key(catalog, "acme", ("admin",))
    app = create_app(ServerSettings(kb=str(root), rate_limit=0), catalog=catalog,
                     open_rag=fake_opener())  # fmt: skip
    headers = {"Authorization": f"Bearer {admin}", "Idempotency-Key": "upload-7"}
    body = {"documents": [{"text": "Parcels leave Lyon at noon.", "source": "lyon.txt"}]}
    with TestClient(app) as client:
        assert client.post("/v1/kbs", json={"name": "docs"}, headers=headers).status_code == 201
        first = client.post("/v1/kbs/docs/documents/text", json=body, headers=headers)
        again = client.post("/v1/kbs/docs/documents/text", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        other = {"documents": [{"text": "Something else.", "source": "lyon.txt"}]}
        refused = client.post("/v1/kbs/docs/documents/text", json=other, headers=headers)
        assert refused.status_code == 409
    with closing(sqlite3.connect(root / "catalog.sqlite")) as db:
        held = db.execute("SELECT id FROM jobs WHERE idempotency_key = 'upload-7'").fetchall()
    assert held == [(first.json()["id"],)]


def test_same_content_without_a_key_is_indexed_once(api: Api) -> None:
    _kb_with_text(api)
    body = {"documents": [{"text": HANDBOOK, "source": "handbook.txt", "metadata": {"v": 1}}]}
    r = api.client.post("/v1/kbs/handbook/documents/text", json=body, headers=api.h("acme_write"))
    job = api.wait(r.json()["id"])
    assert job["report"]["unchanged"] == ["handbook.txt"]
    assert job["report"]["chunks_added"] == 0


def test_replace_and_delete_a_document(api: Api) -> None:
    _kb_with_text(api)
    doc_id = document_id("handbook.txt")
    r = api.client.put(
        f"/v1/kbs/handbook/documents/{doc_id}",
        files={"file": ("whatever.txt", b"Returns are refunded in 30 days.", "text/plain")},
        headers=api.h("acme_write"),
    )
    assert r.status_code == 202, r.text
    job = api.wait(r.json()["id"])
    assert job["report"]["updated"] == ["handbook.txt"], job
    hits = api.client.post(
        "/v1/kbs/handbook/search", json={"query": "refunded"}, headers=api.h("acme_read")
    ).json()["data"]
    assert [h["chunk"]["text"] for h in hits] == ["Returns are refunded in 30 days."]
    r = api.client.delete(f"/v1/kbs/handbook/documents/{doc_id}", headers=api.h("acme_write"))
    assert r.status_code == 202
    assert api.wait(r.json()["id"])["report"]["deleted"] == ["handbook.txt"]
    r = api.client.get(f"/v1/kbs/handbook/documents/{doc_id}", headers=api.h("acme_read"))
    assert r.status_code == 404


def test_sync_only_under_an_allowed_root(api: Api) -> None:
    _kb_with_text(api)
    shared = api.root / "shared"
    (shared / "a.txt").write_text("Invoices are sent on the first of the month.")
    r = api.client.post(
        "/v1/kbs/handbook/sync", json={"path": str(shared)}, headers=api.h("acme_write")
    )
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["id"])["report"]["added"] == [str(shared / "a.txt")]
    for outside in (str(api.root), str(shared / ".." / "kbs"), "/etc"):
        r = api.client.post(
            "/v1/kbs/handbook/sync", json={"path": outside}, headers=api.h("acme_write")
        )
        assert r.status_code == 403, outside


def test_sync_is_refused_without_roots(tmp_path: Path) -> None:
    for api in _make(tmp_path):
        _kb_with_text(api)
        r = api.client.post(
            "/v1/kbs/handbook/sync", json={"path": str(tmp_path)}, headers=api.h("acme_write")
        )
        assert r.status_code == 403
        assert "sync_roots" in r.json()["error"]["message"]


def test_ask_as_json_has_the_answer_shape(api: Api) -> None:
    _kb_with_text(api)
    r = api.client.post(
        "/v1/kbs/handbook/ask",
        json={"question": "When are refunds paid?"},
        headers=api.h("acme_read"),
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["question"] == "When are refunds paid?"
    assert answer["citations"], answer
    c = answer["citations"][0]
    assert f"[{c['marker']}]" in answer["text"]
    assert HANDBOOK[c["start"] : c["end"]] == c["quote"]


def test_kb_lifecycle_and_conflicts(api: Api) -> None:
    h = api.h("acme_admin")
    assert api.client.post("/v1/kbs", json={"name": "docs"}, headers=h).status_code == 201
    assert api.client.post("/v1/kbs", json={"name": "docs"}, headers=h).status_code == 409
    assert api.client.post("/v1/kbs", json={"name": "Bad Name"}, headers=h).status_code == 422
    names = [k["name"] for k in api.client.get("/v1/kbs", headers=h).json()["data"]]
    assert names == ["docs"]
    info = api.client.get("/v1/kbs/docs", headers=h).json()
    assert (info["documents"], info["chunks"]) == (0, 0)
    assert api.client.delete("/v1/kbs/docs", headers=h).status_code == 204
    assert api.client.get("/v1/kbs/docs", headers=h).status_code == 404


# -- tenants ---------------------------------------------------------------------------


def test_cross_tenant_matrix_every_endpoint_answers_404_like_a_missing_one(api: Api) -> None:
    job = _kb_with_text(api, "acme", "handbook")
    doc_id = document_id("handbook.txt")
    upload = {"documents": [{"text": "x y", "source": "x.txt"}]}
    file = {"file": ("x.txt", b"x y", "text/plain")}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/kbs/handbook", {}),
        ("DELETE", "/v1/kbs/handbook", {}),
        ("GET", "/v1/kbs/handbook/documents", {}),
        ("POST", "/v1/kbs/handbook/documents/text", {"json": upload}),
        ("POST", "/v1/kbs/handbook/documents", {"files": [("files", file["file"])]}),
        ("GET", f"/v1/kbs/handbook/documents/{doc_id}", {}),
        ("PUT", f"/v1/kbs/handbook/documents/{doc_id}", {"files": file}),
        ("DELETE", f"/v1/kbs/handbook/documents/{doc_id}", {}),
        ("POST", "/v1/kbs/handbook/sync", {"json": {"path": str(api.root / "shared")}}),
        ("POST", "/v1/kbs/handbook/search", {"json": {"query": "refunds"}}),
        ("POST", "/v1/kbs/handbook/ask", {"json": {"question": "refunds?"}}),
        ("GET", f"/v1/jobs/{job['id']}", {}),
        ("POST", f"/v1/jobs/{job['id']}/cancel", {}),
        ("GET", f"/v1/jobs/{job['id']}/events", {}),
    ]
    for method, url, kwargs in requests:
        theirs = api.client.request(method, url, headers=api.h("beta_admin"), **kwargs)
        missing = api.client.request(
            method,
            url.replace("handbook", "nothere").replace(job["id"], "job_" + "0" * 24),
            headers=api.h("beta_admin"),
            **kwargs,
        )
        assert theirs.status_code == 404, (method, url, theirs.text)
        message = theirs.json()["error"]["message"]
        assert message == missing.json()["error"]["message"].replace("nothere", "handbook").replace(
            "job_" + "0" * 24, job["id"]
        ), (method, url)
    beta_kbs = api.client.get("/v1/kbs", headers=api.h("beta_admin")).json()["data"]
    assert beta_kbs == []
    # and the kb is untouched
    hits = api.client.post(
        "/v1/kbs/handbook/search", json={"query": "refunds"}, headers=api.h("acme_read")
    ).json()["data"]
    assert [h["chunk"]["source"] for h in hits] == ["handbook.txt"]


def test_two_tenants_may_each_have_a_kb_of_one_name(api: Api) -> None:
    _kb_with_text(api, "acme", "docs")
    r = api.client.post("/v1/kbs", json={"name": "docs"}, headers=api.h("beta_admin"))
    assert r.status_code == 201
    hits = api.client.post(
        "/v1/kbs/docs/search", json={"query": "refunds"}, headers=api.h("beta_read")
    ).json()["data"]
    assert hits == []


# -- limits, CORS, errors --------------------------------------------------------------


def test_request_over_the_size_limit_is_413_with_the_limit(tmp_path: Path) -> None:
    for api in _make(tmp_path, max_request_bytes=2048):
        _kb_with_text(api)
        body = {"documents": [{"text": "word " * 1000, "source": "big.txt"}]}
        r = api.client.post(
            "/v1/kbs/handbook/documents/text", json=body, headers=api.h("acme_write")
        )
        assert r.status_code == 413
        assert "2048 bytes" in r.json()["error"]["message"]

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"documents": [{"source": "big.txt", "text": "'
            for _ in range(100):
                yield b"word " * 20
            yield b'"}]}'

        r = api.client.post(
            "/v1/kbs/handbook/documents/text",
            content=chunked(),
            headers={**api.h("acme_write"), "Content-Type": "application/json"},
        )
        assert r.status_code == 413


def test_rate_limit_is_429_with_retry_after_per_key(tmp_path: Path) -> None:
    for api in _make(tmp_path, rate_limit=60, rate_burst=3):
        statuses = [
            api.client.get("/v1/kbs", headers=api.h("acme_read")).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        r = api.client.get("/v1/kbs", headers=api.h("acme_read"))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert api.client.get("/v1/kbs", headers=api.h("acme_admin")).status_code == 200


def test_two_workers_on_one_folder_share_a_keys_rate_limit(tmp_path: Path) -> None:
    root = tmp_path / "kbs"
    _, key = create_key(LocalCatalog(root), "acme", ("read",))
    headers = {"Authorization": f"Bearer {key}"}
    settings = ServerSettings(kb=str(root), rate_limit=60, rate_burst=3)
    apps = [create_app(settings, catalog=LocalCatalog(root), open_rag=fake_opener())
            for _ in range(2)]  # fmt: skip
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        statuses = [c.get("/v1/kbs", headers=headers).status_code for c in (a, b, a, b)]
    assert statuses == [200, 200, 200, 429]  # one bucket of 3, not 3 per worker


def test_cors_is_closed_by_default(api: Api) -> None:
    r = api.client.options(
        "/v1/kbs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = api.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allowlist_is_honoured(tmp_path: Path) -> None:
    for api in _make(tmp_path, cors_origins=("https://app.example",)):
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization"}  # fmt: skip
        ok = api.client.options("/v1/kbs", headers={"Origin": "https://app.example", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        bad = api.client.options("/v1/kbs", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in bad.headers
    with pytest.raises(ValueError, match="origins"):
        ServerSettings(cors_origins=("*",))


def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    _kb_with_text(api)
    secret = "s3cr3t-" + "x" * 20
    r = api.client.post(
        "/v1/kbs/handbook/search", json={"query": secret, "k": 0}, headers=api.h("acme_read")
    )
    assert r.status_code == 422
    assert secret not in r.text
    assert "k" in r.json()["error"]["message"]


def test_jobs_are_saved_for_other_workers_and_a_dead_workers_job_fails(api: Api) -> None:
    job = _kb_with_text(api)
    stored = api.catalog.get_job("acme", job["id"])
    assert stored is not None
    assert stored.state == "succeeded"
    # A job another (now dead) worker was running: its heartbeat stopped long ago.
    from dataclasses import replace

    ghost = replace(stored, id="job_ghost", state="running", worker="gone:1:x", heartbeat=1.0)
    api.catalog.save_job(ghost)
    r = api.client.get("/v1/jobs/job_ghost", headers=api.h("acme_read")).json()
    assert r["state"] == "failed"
    assert "heartbeat" in r["message"]
    assert api.catalog.get_job("acme", "job_ghost").state == "failed"  # type: ignore[union-attr]


class GatedEmbedder(FakeEmbedder):
    """Holds every document embedding until ``gate`` is set: the job is still running
    when the test cancels it, however slow the machine."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def embed_documents(self, texts: Sequence[str]) -> Any:
        assert self.gate.wait(20), "the test never opened the gate"
        return super().embed_documents(texts)


def test_cancel_a_running_job(tmp_path: Path) -> None:
    from ragkit.rag import RAG

    gate = threading.Event()

    def open_rag(info: Any) -> RAG:
        return RAG(info.settings, tenant=info.tenant, embedder=GatedEmbedder(gate), store="memory")

    for api in _make(tmp_path, open_rag, job_workers=1):
        api.client.post("/v1/kbs", json={"name": "big"}, headers=api.h("acme_admin"))
        docs = [
            {"text": f"Document {i} about topic {i}.", "source": f"d{i}.txt"} for i in range(400)
        ]
        r = api.client.post(
            "/v1/kbs/big/documents/text", json={"documents": docs}, headers=api.h("acme_write")
        )
        job_id = r.json()["id"]
        c = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("acme_write"))
        assert c.status_code == 200
        gate.set()
        job = api.wait(job_id)
        # Either it was still queued (nothing indexed) or it stopped between documents.
        assert job["state"] == "canceled", job
        r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("acme_read"))
        assert r.status_code == 403


def test_openapi_is_3_1_and_matches_the_committed_file(api: Api) -> None:
    served = api.client.get("/openapi.json").json()
    assert served["openapi"].startswith("3.1")
    committed = REPO / "docs" / "openapi.json"
    expected = json.loads(committed.read_text()) if committed.exists() else None
    assert served == expected, (
        "the served OpenAPI schema differs from docs/openapi.json; if the change is "
        "intended, rewrite the file with: .venv/bin/python -m ragkit.server.openapi "
        "docs/openapi.json"
    )
