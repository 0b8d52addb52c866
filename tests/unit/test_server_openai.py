"""The OpenAI-compatible endpoints and ``/mcp`` in process: errors in OpenAI's shape,
lenient parameters, annotations that point at the markers, tenants, the app factory.

The official SDKs, streaming and MCP sessions run against a real uvicorn in
``tests/integration/test_server_openai_mcp.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from ragkit.backends.keys import create_key
from ragkit.backends.local_catalog import LocalCatalog
from ragkit.server import ServerSettings, create_app
from ragkit.server.openai_wire import annotations_of, sources_of
from ragkit.server.testing import fake_opener
from ragkit.types import Answer, Citation, document_id

TEXT = "Refunds are paid within 14 days of the return. The warehouse in Lyon ships daily."
ASK = {"messages": [{"role": "user", "content": "When are refunds paid?"}]}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    catalog = LocalCatalog(tmp_path / "kbs")
    keys = {}
    for tenant in ("acme", "beta"):
        for scope in ("read", "admin"):
            _, keys[f"{tenant}_{scope}"] = create_key(catalog, tenant, (scope,))
    settings = ServerSettings(kb=str(tmp_path / "kbs"), rate_limit=0)
    app = create_app(settings, catalog=catalog, open_rag=fake_opener())
    with TestClient(app) as client:
        api = Api(client, keys)
        assert client.post("/v1/kbs", json={"name": "handbook"}, headers=api.h("acme_admin"))
        r = client.post(
            "/v1/kbs/handbook/documents/text",
            json={"documents": [{"text": TEXT, "source": "handbook.txt"}]},
            headers=api.h("acme_admin"),
        )
        deadline = time.monotonic() + 20
        while client.get(r.headers["Location"], headers=api.h("acme_admin")).json()["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield api


def test_models_are_the_tenants_kbs(api: Api) -> None:
    r = api.client.get("/v1/models", headers=api.h("acme_read"))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [
        ("handbook", "model", "acme")
    ]
    assert api.client.get("/v1/models", headers=api.h("beta_read")).json()["data"] == []
    one = api.client.get("/v1/models/handbook", headers=api.h("acme_read")).json()
    assert one["id"] == "handbook"


def test_non_streamed_completion_has_annotations_on_the_markers_and_sources(api: Api) -> None:
    r = api.client.post(
        "/v1/chat/completions", json={"model": "handbook", **ASK}, headers=api.h("acme_read")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "handbook"
    message = body["choices"][0]["message"]
    content = message["content"]
    assert "[1]" in content
    note = message["annotations"][0]
    span = note["url_citation"]
    assert content[span["start_index"] : span["end_index"]] == "[1]"
    assert span["url"].endswith(f"/v1/kbs/handbook/documents/{document_id('handbook.txt')}")
    assert TEXT[note["ragkit"]["start"] : note["ragkit"]["end"]] == note["ragkit"]["quote"]
    assert [s["marker"] for s in body["sources"]] == [1]
    assert body["sources"][0]["source"] == "handbook.txt"


def test_unknown_parameters_are_ignored_and_bad_types_are_400_in_openai_shape(api: Api) -> None:
    ok = {
        "model": "handbook",
        **ASK,
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "text"},
        "stream_options": {"include_usage": True},
        "something_new": [1, 2],
    }
    r = api.client.post("/v1/chat/completions", json=ok, headers=api.h("acme_read"))
    assert r.status_code == 200, r.text
    bad: list[tuple[dict[str, Any], str | None]] = [
        ({"model": "handbook", **ASK, "temperature": "hot"}, "temperature"),
        ({"model": "handbook", **ASK, "stream": "yes please"}, "stream"),
        ({"model": "handbook", **ASK, "n": 2}, None),
        ({"model": "handbook", "messages": "hello"}, "messages"),
        ({"model": "handbook", "messages": []}, "messages"),
        ({"model": "handbook", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"model": "handbook", "messages": [{"role": "system", "content": "x"}]}, None),
        ({"model": "handbook", "messages": [{"role": "user", "content": " "}]}, None),
        ({**ASK}, "model"),
        ({"model": 7, **ASK}, "model"),
    ]
    for body, param in bad:
        r = api.client.post("/v1/chat/completions", json=body, headers=api.h("acme_read"))
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error", body
        assert error["param"] == param, (body, error)
        assert error["message"]
        assert "hot" not in error["message"]  # the rejected value is not echoed
    r = api.client.post(
        "/v1/chat/completions",
        content=b"{not json",
        headers={**api.h("acme_read"), "content-type": "application/json"},
    )
    assert r.status_code == 400


def test_auth_errors_are_openai_shaped_with_a_challenge(api: Api) -> None:
    r = api.client.get("/v1/models")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_cross_tenant_matrix_for_the_openai_and_mcp_endpoints(api: Api) -> None:
    def chat(model: str, stream: bool) -> Any:
        return api.client.post(
            "/v1/chat/completions",
            json={"model": model, **ASK, "stream": stream},
            headers=api.h("beta_admin"),
        )

    for theirs, missing in (
        (chat("handbook", False), chat("nothere", False)),
        (chat("handbook", True), chat("nothere", True)),
        (
            api.client.get("/v1/models/handbook", headers=api.h("beta_admin")),
            api.client.get("/v1/models/nothere", headers=api.h("beta_admin")),
        ),
    ):
        assert theirs.status_code == missing.status_code == 404
        error = theirs.json()["error"]
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert error["message"] == missing.json()["error"]["message"].replace("nothere", "handbook")
    listed = api.client.get("/v1/models", headers=api.h("beta_admin")).json()["data"]
    assert listed == []
    for tool, args in (
        ("search", {"query": "refunds"}),
        ("ask", {"question": "When are refunds paid?"}),
        ("get_document", {"document": "handbook.txt"}),
    ):
        theirs = _mcp_call(api, "beta_admin", tool, {"kb": "handbook", **args})
        missing = _mcp_call(api, "beta_admin", tool, {"kb": "nothere", **args})
        assert theirs["isError"] is True, tool
        assert theirs["content"][0]["text"] == "kb 'handbook' not found"
        assert missing["content"][0]["text"] == "kb 'nothere' not found"
        mine = _mcp_call(api, "acme_read", tool, {"kb": "handbook", **args})
        assert mine["isError"] is False, (tool, mine)


def _mcp_call(api: Api, who: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    r = api.client.post(
        "/mcp",
        json=body,
        headers={**api.h(who), **MCP_HEADERS, "MCP-Protocol-Version": "2025-06-18"},
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["result"]
    return result


def test_mcp_needs_a_key_with_read_scope(api: Api) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    r = api.client.post("/mcp", json=body, headers=MCP_HEADERS)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = api.client.post("/mcp", json=body, headers={**MCP_HEADERS, **api.h("acme_read")})
    assert r.status_code == 200
    assert {t["name"] for t in r.json()["result"]["tools"]} == {"search", "ask", "get_document"}


def test_two_apps_share_no_mcp_state(tmp_path: Path) -> None:
    apps, keys = [], []
    for name in ("one", "two", "unstarted"):
        catalog = LocalCatalog(tmp_path / name)
        keys.append(create_key(catalog, "acme", ("read",))[1])
        settings = ServerSettings(kb=str(tmp_path / name), rate_limit=0)
        apps.append(create_app(settings, catalog=catalog, open_rag=fake_opener()))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    h = [{**MCP_HEADERS, "Authorization": f"Bearer {key}"} for key in keys]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        assert first.post("/mcp", json=body, headers=h[0]).status_code == 200
        assert second.post("/mcp", json=body, headers=h[1]).status_code == 200
        # each app's keys and tools are its own
        assert second.post("/mcp", json=body, headers=h[0]).status_code == 401
    # an app whose lifespan never ran says so instead of failing
    r = TestClient(apps[2]).post("/mcp", json=body, headers=h[2])
    assert r.status_code == 503
    assert "lifespan" in r.json()["error"]["message"]


def test_annotations_point_at_every_marker_and_sources_are_numbered() -> None:
    text = "Refunds take 14 days [2]. Lyon ships daily [1]. Again [2]."
    cites = (
        Citation(1, "c1", "b.txt", 3, 9, "quote1"),
        Citation(2, "c2", "a.pdf", 0, 5, "quote", page=3),
    )
    answer = Answer(question="q", text=text, citations=cites)
    notes = annotations_of(answer, "kb", "http://h:1/")
    spans = [(n.url_citation.start_index, n.url_citation.end_index) for n in notes]
    assert spans == [(21, 24), (43, 46), (54, 57)]
    assert [text[a:b] for a, b in spans] == ["[2]", "[1]", "[2]"]
    assert [n.ragkit.marker for n in notes] == [2, 1, 2]
    assert notes[0].ragkit.page == 3
    assert notes[0].url_citation.url == f"http://h:1/v1/kbs/kb/documents/{document_id('a.pdf')}"
    assert [s.marker for s in sources_of(cites[::-1], "kb", "http://h:1")] == [1, 2]


# -- what schemathesis found (tests/integration/test_server_schema.py) ------------------


def _events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append(fields)
    return events


def test_every_event_stream_is_documented_as_events_that_real_streams_match(api: Api) -> None:
    """Each text/event-stream response documents one event (an object with ``data``,
    ``event``, ``id``), as OpenAPI 3.1 tools read it; it said ``{"type": "string"}``."""
    jsonschema = pytest.importorskip("jsonschema")
    doc = api.client.get("/openapi.json").json()["paths"]
    streams = {
        path: op["responses"]["200"]["content"]["text/event-stream"]["schema"]
        for path, item in doc.items()
        for op in item.values()
        if "text/event-stream" in op.get("responses", {}).get("200", {}).get("content", {})
    }
    assert set(streams) == {
        "/v1/kbs/{kb}/ask",
        "/v1/jobs/{job_id}/events",
        "/v1/chat/completions",
    }
    h = api.h("acme_read")
    sent = {
        "/v1/kbs/{kb}/ask": api.client.post(
            "/v1/kbs/handbook/ask", json={"question": "refunds?", "stream": True}, headers=h
        ),
        "/v1/chat/completions": api.client.post(
            "/v1/chat/completions", json={"model": "handbook", **ASK, "stream": True}, headers=h
        ),
    }
    for path, response in sent.items():
        events = _events(response.text)
        assert len(events) >= 3, path
        for event in events:
            jsonschema.validate(event, streams[path])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"event": "sources"}, streams["/v1/kbs/{kb}/ask"])


def test_an_upload_with_no_files_is_invalid_in_the_schema_too(api: Api) -> None:
    """The schema allowed ``files: []`` (which multipart cannot send) while the server
    answered 422 "files: Field required"; it now says ``minItems: 1``."""
    doc = api.client.get("/openapi.json").json()
    ref = doc["paths"]["/v1/kbs/{kb}/documents"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]["schema"]["$ref"]
    files = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]["files"]
    assert files["minItems"] == 1


def test_the_kb_name_pattern_in_the_schema_is_check_kb_names_rule(api: Api) -> None:
    """The schema allowed ``a__b``, which the server refuses (400): they now agree."""
    import re

    from ragkit.backends.catalog import check_kb_name
    from ragkit.errors import ConfigurationError

    doc = api.client.get("/openapi.json").json()
    pattern = re.compile(doc["components"]["schemas"]["KbCreate"]["properties"]["name"]["pattern"])
    names = ["a", "a_", "a_b", "ab_c_d", "a1_2", "a__b", "qav__h", "_a", "1a", "a-b", "A", "a_b__"]
    for name in names:
        try:
            check_kb_name(name)
            valid = True
        except ConfigurationError:
            valid = False
        assert bool(pattern.match(name)) == valid, name
    r = api.client.post("/v1/kbs", json={"name": "a__b"}, headers=api.h("acme_admin"))
    assert r.status_code == 422


@contextmanager
def _serving(tmp_path: Path, generator: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app whose kb ``handbook`` holds TEXT and answers with ``generator`` (no
    relevance gate); yields its client and an all-scopes key's headers."""
    catalog = LocalCatalog(tmp_path / "kbs")
    _, key = create_key(catalog, "acme", ("read", "write", "admin"))
    settings = ServerSettings(kb=str(tmp_path / "kbs"), rate_limit=0)
    opener = fake_opener(generator=generator, verify=False)
    app = create_app(settings, catalog=catalog, open_rag=opener)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        assert client.post("/v1/kbs", json={"name": "handbook"}, headers=headers)
        r = client.post(
            "/v1/kbs/handbook/documents/text",
            json={"documents": [{"text": TEXT, "source": "handbook.txt"}]},
            headers=headers,
        )
        deadline = time.monotonic() + 20
        while client.get(r.headers["Location"], headers=headers).json()["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield client, headers


def test_the_messages_before_the_last_user_turn_are_the_conversation(tmp_path: Path) -> None:
    from ragkit.testing import FakeGenerator

    generator = FakeGenerator()
    with _serving(tmp_path, generator) as (client, headers):
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is the warehouse?"},
            {"role": "assistant", "content": "In Lyon."},
            {"role": "user", "content": "How often does it ship?"},
        ]
        r = client.post(
            "/v1/chat/completions",
            json={"model": "handbook", "messages": messages},
            headers=headers,
        )
        assert r.status_code == 200, r.text
    # The generator got the standalone question the history made, not the bare turn.
    assert generator.questions[-1] != "How often does it ship?"
    assert "warehouse" in generator.questions[-1].lower()


def _openai_chunks(body: str) -> list[dict[str, Any]]:
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_usage_counts_the_generators_tokens_and_streams_them_when_asked(
    tmp_path: Path, api: Api
) -> None:
    from ragkit.testing import FakeGenerator

    question = "When are refunds paid?"
    # FakeGenerator's tokens are words: the question's and the one chunk's read, and
    # "Answer from the context [1]." written.
    expected = {"prompt_tokens": len(question.split()) + len(TEXT.split()),
                "completion_tokens": 5}  # fmt: skip
    expected["total_tokens"] = expected["prompt_tokens"] + 5
    ask = {"model": "handbook", "messages": [{"role": "user", "content": question}]}
    with _serving(tmp_path, FakeGenerator()) as (client, headers):
        whole = client.post("/v1/chat/completions", json=ask, headers=headers).json()
        assert whole["usage"] == expected
        own = client.post("/v1/kbs/handbook/ask", json={"question": question}, headers=headers)
        assert own.json()["usage"] == expected
        plain = client.post("/v1/chat/completions", json={**ask, "stream": True}, headers=headers)
        assert all("usage" not in e for e in _openai_chunks(plain.text))
        options = {**ask, "stream": True, "stream_options": {"include_usage": True}}
        streamed = client.post("/v1/chat/completions", json=options, headers=headers)
        counted = _openai_chunks(streamed.text)
    *chunks, last = counted
    assert all(e["usage"] is None for e in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == []
    assert last["usage"] == expected
    # The extractive default quotes the kb: no language model, no counts.
    r = api.client.post("/v1/chat/completions", json=ask, headers=api.h("acme_read"))
    assert r.json()["choices"][0]["message"]["content"]
    assert r.json()["usage"] is None
