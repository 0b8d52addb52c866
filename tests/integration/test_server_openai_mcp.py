"""The OpenAI-compatible endpoints through the official ``openai`` SDK, and ``/mcp``
through the official ``mcp`` client, against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest

from ragkit.client import Client

openai = pytest.importorskip("openai")
pytest.importorskip("mcp")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.integration

TEXT = (
    "Refunds are paid within fourteen days of the return. "
    "The warehouse in Lyon ships orders every weekday."
)
QUESTION = "When are refunds paid?"


def _kb(server: Any) -> str:
    name = "kb" + uuid.uuid4().hex[:8]
    with Client(server.url, server.keys["acme_admin"]) as client:
        client.create_kb(name)
        job = client.wait(client.add_texts(name, [{"text": TEXT, "source": "refunds.txt"}]))
        assert job.state == "succeeded", job
    return name


def _check_annotations(content: str, annotations: list[Any], sources: list[Any]) -> None:
    markers = [(m.start(), m.end(), int(m.group(1))) for m in re.finditer(r"\[(\d+)\]", content)]
    assert markers, content
    assert len(annotations) == len(markers)
    for note, (start, end, marker) in zip(annotations, markers, strict=True):
        assert note["type"] == "url_citation"
        cite = note["url_citation"]
        assert (cite["start_index"], cite["end_index"]) == (start, end)
        assert content[cite["start_index"] : cite["end_index"]] == f"[{marker}]"
        assert cite["title"] == "refunds.txt"
        assert "/v1/kbs/" in cite["url"]
        extra = note["ragkit"]
        assert extra["marker"] == marker
        assert extra["source"] == "refunds.txt"
        assert TEXT[extra["start"] : extra["end"]] == extra["quote"]
    assert [s["marker"] for s in sources] == sorted({m for _, _, m in markers})
    for source in sources:
        assert TEXT[source["start"] : source["end"]] == source["quote"]


def test_openai_sdk_lists_models_and_gets_a_cited_answer(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 2, 0.0
    client = openai.OpenAI(
        base_url=ragkit_server.url + "/v1", api_key=ragkit_server.keys["acme_read"]
    )
    assert kb in [m.id for m in client.models.list()]
    assert client.models.retrieve(kb).owned_by == "acme"
    completion = client.chat.completions.create(
        model=kb,
        messages=[
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": "Where is the warehouse?"},
            {"role": "assistant", "content": "In Lyon."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
        temperature=0.2,  # accepted, ignored
    )
    assert completion.object == "chat.completion"
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert "Refunds are paid within fourteen days" in (message.content or "")
    assert message.annotations
    raw = completion.model_dump()
    _check_annotations(
        raw["choices"][0]["message"]["content"],
        raw["choices"][0]["message"]["annotations"],
        raw["sources"],
    )
    # the SDK's own types read the annotations
    assert message.annotations[0].url_citation.title == "refunds.txt"


def test_openai_sdk_stream_has_annotations_and_sources_only_in_the_last_chunk(
    ragkit_server: Any,
) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 3, 0.0
    client = openai.OpenAI(
        base_url=ragkit_server.url + "/v1", api_key=ragkit_server.keys["acme_read"]
    )
    chunks = [
        c.model_dump()
        for c in client.chat.completions.create(
            model=kb, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    ]
    assert len(chunks) >= 4  # role, text deltas, the last chunk
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    *body, last = chunks
    for c in body:
        assert c["choices"][0]["finish_reason"] is None
        assert not c["choices"][0]["delta"].get("annotations")
        assert "sources" not in c
    assert last["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks)
    assert text.count("Refunds are paid within fourteen days") == 3
    _check_annotations(text, last["choices"][0]["delta"]["annotations"], last["sources"])
    # the streamed text is the non-streamed answer
    whole = client.chat.completions.create(
        model=kb, messages=[{"role": "user", "content": QUESTION}]
    )
    assert whole.choices[0].message.content == text


def test_stream_ends_with_done_and_errors_are_openai_shaped(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 1, 0.0
    url = ragkit_server.url + "/v1/chat/completions"
    read = {"Authorization": f"Bearer {ragkit_server.keys['acme_read']}"}
    body = {"model": kb, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with httpx.stream("POST", url, json=body, headers=read, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert sum(1 for d in data[:-1] if "sources" in json.loads(d)) == 1
    v1 = ragkit_server.url + "/v1"
    beta = openai.OpenAI(base_url=v1, api_key=ragkit_server.keys["beta_admin"])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        beta.chat.completions.create(model=kb, messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.NotFoundError):
        beta.models.retrieve(kb)
    assert kb not in [m.id for m in beta.models.list()]
    nobody = openai.OpenAI(base_url=v1, api_key="rk_000000000000_wrong")
    with pytest.raises(openai.AuthenticationError):
        nobody.models.list()
    client = openai.OpenAI(
        base_url=ragkit_server.url + "/v1", api_key=ragkit_server.keys["acme_read"]
    )
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(
            model=kb, messages=[{"role": "user", "content": QUESTION}],
            extra_body={"temperature": "warm"},
        )  # fmt: skip


# -- MCP -------------------------------------------------------------------------------


async def _mcp(url: str, key: str | None, kb: str) -> dict[str, Any]:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    out: dict[str, Any] = {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        out["tools"] = (await session.list_tools()).tools
        out["search"] = await session.call_tool("search", {"kb": kb, "query": "refunds", "k": 1})
        out["ask"] = await session.call_tool("ask", {"kb": kb, "question": QUESTION})
        doc_id = out["search"].structured_content["hits"][0]["document_id"]
        out["doc"] = await session.call_tool("get_document", {"kb": kb, "document": doc_id})
        out["by_name"] = await session.call_tool(
            "get_document", {"kb": kb, "document": "refunds.txt"}
        )
        out["bad_k"] = await session.call_tool("search", {"kb": kb, "query": "x", "k": 0})
        out["missing"] = await session.call_tool("search", {"kb": "nothere", "query": "x"})
    return out


def test_mcp_client_lists_and_calls_the_three_read_only_tools(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 1, 0.0
    out = asyncio.run(_mcp(ragkit_server.url, ragkit_server.keys["acme_read"], kb))
    tools = {t.name: t for t in out["tools"]}
    assert set(tools) == {"search", "ask", "get_document"}
    assert all(t.annotations.read_only_hint for t in tools.values())
    assert tools["search"].input_schema["required"] == ["kb", "query"]
    hit = out["search"].structured_content["hits"][0]
    assert not out["search"].is_error
    assert hit["source"] == "refunds.txt"
    assert TEXT[hit["start"] : hit["end"]] == hit["text"]
    answer = out["ask"].structured_content
    assert "Refunds are paid within fourteen days" in answer["text"]
    assert answer["citations"][0]["quote"] in TEXT
    assert "Sources:" in out["ask"].content[0].text
    for doc in (out["doc"], out["by_name"]):
        assert not doc.is_error
        assert doc.structured_content["text"] == TEXT
        assert doc.structured_content["source"] == "refunds.txt"
    assert out["bad_k"].is_error
    assert "k must be" in out["bad_k"].content[0].text
    assert out["missing"].is_error
    assert "not found" in out["missing"].content[0].text


def test_mcp_is_refused_without_a_key_and_sees_only_the_keys_tenant(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer rk_000000000000_wrong"}):
        r = httpx.post(ragkit_server.url + "/mcp", json=init, headers={**accept, **headers})
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "rk_000000000000_wrong" not in r.text
    from mcp.shared.exceptions import MCPError

    # the SDK's ClientSession fails to initialize (it reports the 401 as an MCPError)
    raised: list[BaseException] = []
    try:
        asyncio.run(_mcp(ragkit_server.url, None, kb))
    except Exception as exc:  # an exception group around the SDK's MCPError
        raised = _leaves(exc)
    assert any(isinstance(e, MCPError) for e in raised), raised
    # another tenant's key: the kb is not found, the same as a missing one
    beta = asyncio.run(_mcp_calls(ragkit_server.url, ragkit_server.keys["beta_admin"], kb))
    for name, result in beta.items():
        assert result.is_error, name
        assert result.content[0].text == f"kb {kb!r} not found", name


def _leaves(exc: BaseException) -> list[BaseException]:
    group = getattr(exc, "exceptions", None)  # an exception group (3.11+, or anyio's)
    if group is None:
        return [exc]
    return [leaf for e in group for leaf in _leaves(e)]


async def _mcp_calls(url: str, key: str, kb: str) -> dict[str, Any]:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    calls = {
        "search": {"kb": kb, "query": "refunds"},
        "ask": {"kb": kb, "question": QUESTION},
        "get_document": {"kb": kb, "document": "refunds.txt"},
    }
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return {name: await session.call_tool(name, args) for name, args in calls.items()}
