"""The server over real sockets (uvicorn on 127.0.0.1): streamed answers, disconnects,
job progress events and the Python client. In-process clients buffer streams; these
tests read them as they arrive."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from ragkit.client import AsyncClient, Client
from ragkit.errors import AuthenticationError, NotFoundError
from ragkit.types import CitationEvent, DeltaEvent, DoneEvent, SourcesEvent

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.integration

TEXT = (
    "Refunds are paid within fourteen days of the return. "
    "The warehouse in Lyon ships orders every weekday."
)


def _kb(server: Any) -> str:
    """A new kb of acme holding TEXT, through the Python client."""
    name = "kb" + uuid.uuid4().hex[:8]
    with Client(server.url, server.keys["acme_admin"]) as client:
        client.create_kb(name)
        job = client.wait(client.add_texts(name, [{"text": TEXT, "source": "refunds.txt"}]))
        assert job.state == "succeeded", job
    return name


def _events(response: Any) -> list[tuple[int | None, str, Any]]:
    out, name, data, event_id = [], "message", [], None
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                out.append((event_id, name, json.loads("\n".join(data))))
            name, data, event_id = "message", [], None
            continue
        key, _, value = line.partition(": ")
        if key == "id":
            event_id = int(value)
        elif key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return out


def test_sse_order_sources_once_deltas_citations_one_done(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 3, 0.0
    headers = {"Authorization": f"Bearer {ragkit_server.keys['acme_read']}",
               "Accept": "text/event-stream"}  # fmt: skip
    with httpx.stream(
        "POST", f"{ragkit_server.url}/v1/kbs/{kb}/ask",
        json={"question": "When are refunds paid?"}, headers=headers, timeout=30,
    ) as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _events(r)
    names = [n for _, n, _ in events]
    assert names[0] == "sources"
    assert names.count("sources") == 1
    assert names[-1] == "done"
    assert names.count("done") == 1
    assert "error" not in names
    assert set(names[1:-1]) <= {"delta", "citation"}
    assert "delta" in names
    assert "citation" in names
    ids = [i for i, _, _ in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    done = events[-1][2]
    deltas = "".join(d["text"] for _, n, d in events if n == "delta")
    assert deltas == done["text"]
    assert "Refunds are paid within fourteen days" in done["text"]
    # done has the same shape as the JSON answer
    auth = {"Authorization": headers["Authorization"]}
    plain = httpx.post(
        f"{ragkit_server.url}/v1/kbs/{kb}/ask",
        json={"question": "When are refunds paid?"},
        headers=auth,
        timeout=30,
    ).json()
    assert set(plain) == set(done)
    assert plain["text"] == done["text"]
    cited = {d["marker"] for _, n, d in events if n == "citation"}
    assert cited == {c["marker"] for c in done["citations"]}


def test_stream_true_in_the_body_also_streams(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 1, 0.0
    r = httpx.post(f"{ragkit_server.url}/v1/kbs/{kb}/ask",
                   json={"question": "When are refunds paid?", "stream": True},
                   headers={"Authorization": f"Bearer {ragkit_server.keys['acme_read']}"},
                   timeout=30)  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in r.text


def test_a_client_that_disconnects_stops_the_generation(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    generator = ragkit_server.generator
    generator.repeat, generator.delay = 40, 0.02  # 40 * 11 words: ~9 s if not stopped
    total_words = 40 * 11
    headers = {"Authorization": f"Bearer {ragkit_server.keys['acme_read']}",
               "Accept": "text/event-stream"}  # fmt: skip
    deltas = 0
    with httpx.stream("POST", f"{ragkit_server.url}/v1/kbs/{kb}/ask",
                      json={"question": "When are refunds paid?"}, headers=headers,
                      timeout=30) as r:  # fmt: skip
        for line in r.iter_lines():
            if line == "event: delta":
                deltas += 1
                if deltas == 2:
                    break  # leave mid-answer
    assert generator.stopped_early.wait(5), "the generator was not stopped"
    words = generator.words
    time.sleep(0.3)
    assert generator.words == words  # it stays stopped
    assert not generator.finished.is_set()
    assert words < total_words / 2


def test_heartbeats_while_the_generator_is_slow(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    generator = ragkit_server.generator
    # one long sentence: nothing verified to send for a while -> heartbeats
    generator.repeat, generator.delay = 2, 0.05
    headers = {"Authorization": f"Bearer {ragkit_server.keys['acme_read']}",
               "Accept": "text/event-stream"}  # fmt: skip
    with httpx.stream("POST", f"{ragkit_server.url}/v1/kbs/{kb}/ask",
                      json={"question": "When are refunds paid?"}, headers=headers,
                      timeout=30) as r:  # fmt: skip
        lines = list(r.iter_lines())
    assert ": keep-alive" in lines
    assert "event: done" in lines


def test_job_progress_stream_ends_with_done(ragkit_server: Any) -> None:
    name = "kb" + uuid.uuid4().hex[:8]
    admin = {"Authorization": f"Bearer {ragkit_server.keys['acme_admin']}"}
    httpx.post(f"{ragkit_server.url}/v1/kbs", json={"name": name}, headers=admin)
    docs = [{"text": f"Note {i} on shipping.", "source": f"n{i}.txt"} for i in range(50)]
    job = httpx.post(f"{ragkit_server.url}/v1/kbs/{name}/documents/text",
                     json={"documents": docs}, headers=admin).json()  # fmt: skip
    with httpx.stream("GET", f"{ragkit_server.url}/v1/jobs/{job['id']}/events",
                      headers=admin, timeout=30) as r:  # fmt: skip
        events = _events(r)
    assert [n for _, n, _ in events][-1] == "done"
    assert {n for _, n, _ in events} <= {"progress", "done"}
    assert events[-1][2]["state"] == "succeeded"
    assert len(events[-1][2]["report"]["added"]) == 50


def test_python_client_feels_like_rag(ragkit_server: Any, tmp_path: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 2, 0.0
    path = tmp_path / "lyon.md"
    path.write_text("# Lyon\n\nThe Lyon warehouse closes at noon on Fridays.\n")
    with Client(ragkit_server.url, ragkit_server.keys["acme_write"]) as client:
        job = client.wait(client.upload(kb, path, metadata={"site": "lyon"}))
        assert job.state == "succeeded"
        assert job.report is not None
        assert job.report["added"] == ["lyon.md"]
        hits = client.search(kb, "When does the Lyon warehouse close?", k=1)
        assert hits[0].chunk.source == "lyon.md"
        assert hits[0].chunk.metadata["site"] == "lyon"
        assert path.read_text()[hits[0].chunk.start : hits[0].chunk.end] == hits[0].chunk.text
        answer = client.ask(kb, "When are refunds paid?")
        assert answer.citations
        assert answer.citations[0].quote in TEXT
        events = list(client.events(kb, "When are refunds paid?"))
        assert isinstance(events[0], SourcesEvent)
        assert isinstance(events[-1], DoneEvent)
        assert any(isinstance(e, CitationEvent) for e in events)
        text = "".join(e.text for e in events if isinstance(e, DeltaEvent))
        assert text == events[-1].answer.text
        pieces = list(client.stream(kb, "When are refunds paid?"))
        assert "".join(p for p in pieces if isinstance(p, str)) == pieces[-1].text  # type: ignore[union-attr]
        with pytest.raises(NotFoundError, match="not found"):
            client.search("nothere", "x")
        with pytest.raises(AuthenticationError, match="scope"):
            client.create_kb("nope")
    with Client(ragkit_server.url, ragkit_server.keys["beta_admin"]) as other:
        with pytest.raises(NotFoundError):
            other.ask(kb, "When are refunds paid?")
        with pytest.raises(NotFoundError):
            other.job(job.id)
    with Client(ragkit_server.url, "rk_000000000000_wrong") as nobody:
        with pytest.raises(AuthenticationError) as info:
            nobody.list_kbs()
        assert "rk_000000000000_wrong" not in str(info.value)


def test_async_client(ragkit_server: Any) -> None:
    kb = _kb(ragkit_server)
    ragkit_server.generator.repeat, ragkit_server.generator.delay = 2, 0.0

    async def run() -> None:
        async with AsyncClient(ragkit_server.url, ragkit_server.keys["acme_read"]) as client:
            hits = await client.search(kb, "refunds", k=1)
            assert hits[0].chunk.source == "refunds.txt"
            events = [e async for e in client.events(kb, "When are refunds paid?")]
            assert isinstance(events[-1], DoneEvent)
            answer = await client.ask(kb, "When are refunds paid?")
            assert answer.text == events[-1].answer.text

    asyncio.run(run())
