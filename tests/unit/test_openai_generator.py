"""OpenAIGenerator against a real HTTP server on loopback (ragkit.testing.openai_server)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from ragkit import Answer, RetrievalQA
from ragkit.errors import ConfigurationError, GenerationError, MissingDependencyError
from ragkit.generation import OpenAIGenerator
from ragkit.testing.openai_server import DEFAULT_ANSWER, FakeOpenAIServer, tokens
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Generation, ScoredChunk

HITS = [
    ScoredChunk(
        Chunk(
            id=f"c{i}",
            text=text,
            document_id=f"d{i}",
            source=f"doc{i}.md",
            start=0,
            end=len(text),
        ),
        1.0 - i / 10,
    )
    for i, text in enumerate(
        [
            "The answer is in the first passage: timeouts default to five seconds.",
            "Retries use exponential backoff.",
        ],
        1,
    )
]


class ListRetriever:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return HITS[:k]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "RAGKIT_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def _gen(server: FakeOpenAIServer, **kwargs: object) -> OpenAIGenerator:
    options: dict[str, object] = {"base_url": server.base_url, "backoff": 0.01}
    options.update(kwargs)
    return OpenAIGenerator("fake-chat", **options)  # type: ignore[arg-type]


def test_generate_sends_system_and_user_messages_and_returns_the_answer(
    server: FakeOpenAIServer,
) -> None:
    with _gen(server, max_tokens=64, temperature=0.0, seed=7) as gen:
        out = gen.generate("How long is the default timeout?", HITS)
    assert out.text == DEFAULT_ANSWER
    assert out.contexts == tuple(HITS)
    assert out.model == "fake-chat"
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == "fake-chat"
    assert body["max_tokens"] == 64
    assert body["seed"] == 7
    assert "stream" not in body
    system, user = body["messages"]
    assert system["role"] == "system"
    assert "[1]" in system["content"]
    assert "I don't have enough information" in system["content"]
    assert user["role"] == "user"
    assert "[1] (doc1.md)\nThe answer is in the first passage" in user["content"]
    assert "[2] (doc2.md)\nRetries use" in user["content"]
    assert user["content"].endswith("Question: How long is the default timeout?")
    assert "authorization" not in request.headers  # no key configured, none sent
    assert request.headers["user-agent"].startswith("ragkit/")


def test_stream_yields_deltas_then_the_generation(server: FakeOpenAIServer) -> None:
    items = list(_gen(server).stream("Timeout?", HITS))
    *deltas, final = items
    assert deltas == tokens(DEFAULT_ANSWER)
    assert len(deltas) > 3
    assert all(isinstance(d, str) for d in deltas)
    assert isinstance(final, Generation)
    assert final.text == DEFAULT_ANSWER
    assert final.contexts == tuple(HITS)
    assert server.requests[0].body["stream"] is True


def _read(body: dict[str, object]) -> int:
    """The prompt's pieces as the fake server counts them: every message's content."""
    messages = body["messages"]
    assert isinstance(messages, list)
    return sum(len(tokens(m["content"])) for m in messages)


def test_the_servers_token_counts_reach_the_answer(server: FakeOpenAIServer) -> None:
    qa = RetrievalQA(ListRetriever(), _gen(server, max_tokens=4), k=2)
    answer = qa.ask("Timeout?")
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4  # cut at max_tokens
    assert answer.usage.prompt_tokens == _read(server.requests[0].body) > 20
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 4


def test_a_stream_asks_for_token_counts_only_when_told(server: FakeOpenAIServer) -> None:
    *_, plain = _gen(server).stream("Timeout?", HITS)
    assert isinstance(plain, Generation)
    assert plain.usage is None  # a local server: not asked, none sent
    assert "stream_options" not in server.requests[0].body
    *_, counted = _gen(server, stream_usage=True).stream("Timeout?", HITS)
    assert isinstance(counted, Generation)
    body = server.requests[1].body
    assert body["stream_options"] == {"include_usage": True}
    assert counted.usage is not None
    assert counted.usage.prompt_tokens == _read(body)
    assert counted.usage.completion_tokens == len(tokens(DEFAULT_ANSWER))
    assert OpenAIGenerator("m", api_key="sk-x").stream_usage  # api.openai.com: asked


def test_retrievalqa_stream_ends_with_an_answer_with_citations(server: FakeOpenAIServer) -> None:
    qa = RetrievalQA(ListRetriever(), _gen(server), k=2)
    items = list(qa.stream("Timeout?"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == DEFAULT_ANSWER
    assert [c.marker for c in answer.citations] == [1]
    assert answer.citations[0].source == "doc1.md"
    assert answer.model == "fake-chat"


def test_the_answer_is_cut_at_max_tokens(server: FakeOpenAIServer) -> None:
    out = _gen(server, max_tokens=3).generate("Q?", HITS)
    assert out.text == "".join(tokens(DEFAULT_ANSWER)[:3])


def test_api_key_is_sent_as_bearer_token() -> None:
    with FakeOpenAIServer(api_key="sk-test") as server:
        out = _gen(server, api_key="sk-test").generate("Q?", HITS)
        assert out.text == DEFAULT_ANSWER
        assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_wrong_key_fails_at_once_with_the_servers_message() -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        gen = _gen(server, api_key="sk-wrong", max_retries=3)
        with pytest.raises(GenerationError) as info:
            gen.generate("Q?", HITS)
        assert len(server.requests) == 1  # a 401 is not retried
    message = str(info.value)
    assert gen.url in message
    assert "401" in message
    assert "Incorrect API key provided." in message


def test_retries_429_honouring_retry_after(server: FakeOpenAIServer) -> None:
    server.fail(429, retry_after="1")
    start = time.monotonic()
    out = _gen(server, backoff=0.001).generate("Q?", HITS)
    elapsed = time.monotonic() - start
    assert out.text == DEFAULT_ANSWER
    assert len(server.requests) == 2
    assert 1.0 <= elapsed < 3.0  # waited what the server asked, not the 1 ms backoff


def test_retries_500_with_backoff_then_succeeds(server: FakeOpenAIServer) -> None:
    server.fail(500, times=2)
    out = _gen(server, max_retries=2).generate("Q?", HITS)
    assert out.text == DEFAULT_ANSWER
    assert len(server.requests) == 3


def test_stream_is_retried_before_it_starts(server: FakeOpenAIServer) -> None:
    server.fail(503, times=1, message="overloaded")
    *deltas, final = list(_gen(server).stream("Q?", HITS))
    assert isinstance(final, Generation)
    assert "".join(d for d in deltas if isinstance(d, str)) == DEFAULT_ANSWER
    assert len(server.requests) == 2


def test_gives_up_after_max_retries_with_a_clear_error(server: FakeOpenAIServer) -> None:
    server.fail(502, times=10, message="upstream exploded")
    gen = _gen(server, max_retries=2)
    with pytest.raises(GenerationError) as info:
        gen.generate("Q?", HITS)
    assert len(server.requests) == 3
    message = str(info.value)
    assert f"{server.base_url}/chat/completions answered 502: upstream exploded" in message
    assert "gave up after 3 attempts" in message


def test_timeout_is_a_generation_error_and_is_retried() -> None:
    with FakeOpenAIServer(delay=0.5) as server:
        gen = _gen(server, timeout=0.1, max_retries=1)
        start = time.monotonic()
        with pytest.raises(GenerationError, match=r"no answer within the 0\.1 s timeout"):
            gen.generate("Q?", HITS)
        assert time.monotonic() - start < 0.5 * 2
        assert len(server.requests) == 2


def test_connection_refused_is_a_generation_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no server
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAIGenerator("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(GenerationError, match="connection failed"):
        gen.generate("Q?", HITS)


def test_configuration_from_environment(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.api_key = "sk-env"
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_MODEL", "from-openai-model")
    monkeypatch.setenv("RAGKIT_LLM_MODEL", "from-ragkit")
    gen = OpenAIGenerator()
    assert gen.model == "from-ragkit"  # RAGKIT_LLM_MODEL wins over OPENAI_MODEL
    assert gen.generate("Q?", HITS).text == DEFAULT_ANSWER
    request = server.requests[0]
    assert request.body["model"] == "from-ragkit"
    assert request.headers["authorization"] == "Bearer sk-env"
    monkeypatch.delenv("RAGKIT_LLM_MODEL")
    assert OpenAIGenerator().model == "from-openai-model"


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="RAGKIT_LLM_MODEL"):
        OpenAIGenerator(base_url="http://localhost:1/v1")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIGenerator("gpt-4o-mini")  # api.openai.com without a key
    with pytest.raises(ConfigurationError, match="http"):
        OpenAIGenerator("m", base_url="localhost:8000")


def test_prompt_fits_context_window_dropping_lowest_ranked() -> None:
    long_hits = [
        ScoredChunk(
            Chunk(
                id=f"c{i}",
                text=" ".join(f"word{i}x{j}" for j in range(120)),
                document_id="d",
                source=f"s{i}.md",
                start=0,
                end=1,
            ),
            1.0 - i / 100,
        )
        for i in range(10)
    ]
    gen = OpenAIGenerator("m", base_url="http://localhost:1/v1", context_window=1500)
    prompt = gen.prompt("What?", long_hits)
    assert 0 < len(prompt.contexts) < 10
    assert list(prompt.dropped) == long_hits[len(prompt.contexts) :]
    assert count_tokens(prompt.text) <= 1500 - gen.max_tokens
    # the messages sent are what was counted
    assert all(m.content in prompt.text for m in prompt.messages)


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # makes `import httpx` fail
    gen = OpenAIGenerator("m", base_url="http://localhost:1/v1")
    with pytest.raises(MissingDependencyError, match=r"ragkit\[openai\]"):
        gen.generate("Q?", HITS)


def test_complete_prompt_sends_the_prompt_alone_and_condenses_follow_ups(
    server: FakeOpenAIServer,
) -> None:
    from ragkit.retrieval.history import LLMCondenser

    gen = _gen(server)
    assert gen.complete_prompt("Rewrite this.") == DEFAULT_ANSWER
    (request,) = server.requests
    assert request.body["messages"] == [{"role": "user", "content": "Rewrite this."}]
    history = [{"role": "user", "content": "What is the no-store directive?"}]
    condenser = LLMCondenser(gen, min_overlap=0.0)  # the fake answers the same text to all
    assert condenser.condense("Does it apply?", history) == DEFAULT_ANSWER
    prompt = server.requests[1].body["messages"][0]["content"]
    assert "User: What is the no-store directive?" in prompt
