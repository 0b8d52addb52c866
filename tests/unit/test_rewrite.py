"""Multi-query expansion and HyDE with a fake LLM and a retriever that reads a table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from ragkit.errors import ConfigurationError
from ragkit.generation import CompletionGenerator, ExtractiveGenerator
from ragkit.protocols import Filters, Retriever
from ragkit.retrieval.rewrite import (
    HYDE_PROMPT,
    MULTI_QUERY_PROMPT,
    HyDERetriever,
    MultiQueryRetriever,
    as_completion,
    parse_queries,
)
from ragkit.testing import FakeGenerator
from ragkit.types import Chunk, ScoredChunk


def _hit(cid: str, score: float) -> ScoredChunk:
    return ScoredChunk(Chunk(id=cid, text=cid, document_id="d", source="s", start=0, end=1), score)


class TableRetriever:
    """Answers each query from a table of chunk ids; records every call."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int, Filters | None]] = []

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        self.calls.append((query, k, filters))
        ids = self.table.get(query, ())
        return [_hit(cid, 1.0 - rank / 10) for rank, cid in enumerate(ids)][:k]


class ScriptedLLM:
    """A completion function with a fixed reply; records its prompts."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.reply


def failing_llm(prompt: str) -> str:
    raise TimeoutError("LLM server did not answer")


TABLE = {
    "how to set a timeout": ["a", "b", "c"],
    "configure request timeout": ["b", "d"],
    "timeout settings": ["d", "a", "e"],
}


def test_parse_queries_cleans_up_llm_lines() -> None:
    reply = (
        "Here are three search queries:\n"
        "\n"
        "1. configure request timeout\n"
        "2) Timeout  settings\n"
        '   - "timeout settings"\n'
        "* set a deadline for HTTP calls\n"
        "Query 4: How to set a timeout\n"
        "(5) • connection timeout default\n"
    )
    assert parse_queries(reply, exclude=["how to set a timeout"]) == [
        "configure request timeout",
        "Timeout  settings",
        "set a deadline for HTTP calls",
        "connection timeout default",
    ]
    assert parse_queries(reply, limit=2) == ["configure request timeout", "Timeout  settings"]
    assert parse_queries("") == []
    assert parse_queries("\n  \n-\n") == []
    # a number or a dash that belongs to the query stays
    assert parse_queries("2024 budget report\n1.5 mg doses\nQ-learning\n4 - pool size") == [
        "2024 budget report",
        "1.5 mg doses",
        "Q-learning",
        "pool size",
    ]


def test_multi_query_fuses_the_rewrites_with_the_question() -> None:
    llm = ScriptedLLM("1. configure request timeout\n2. timeout settings\n3. how to set a timeout")
    retriever = TableRetriever(TABLE)
    mq = MultiQueryRetriever(retriever, llm, n=3)
    assert isinstance(mq, Retriever)

    hits = mq.retrieve("how to set a timeout", k=3, filters={"source": "a.md"})

    # one LLM call, with the question and n in the prompt
    assert llm.prompts == [MULTI_QUERY_PROMPT.format(n=3, question="how to set a timeout")]
    # the question first, then the rewrites; its repeat among them is dropped
    assert retriever.calls == [
        ("how to set a timeout", 3, {"source": "a.md"}),
        ("configure request timeout", 3, {"source": "a.md"}),
        ("timeout settings", 3, {"source": "a.md"}),
    ]
    # RRF with k=60, by hand: a 1/61+1/62, b 1/62+1/61, d 1/62+1/61, c 1/63, e 1/63
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62 + 1 / 61, "d": 1 / 62 + 1 / 61}
    assert [h.chunk.id for h in hits] == ["a", "b", "d"]  # equal scores: by chunk id
    assert {h.chunk.id: h.score for h in hits} == pytest.approx(expected)


def test_multi_query_keeps_n_rewrites_and_fetch_k() -> None:
    llm = ScriptedLLM("q1\nq2\nq3\nq4\nq5")
    retriever = TableRetriever(TABLE)
    mq = MultiQueryRetriever(retriever, llm, n=2, fetch_k=10)
    assert mq.queries("how to set a timeout") == ["how to set a timeout", "q1", "q2"]
    mq.retrieve("how to set a timeout", k=2)
    assert [(q, k) for q, k, _ in retriever.calls] == [
        ("how to set a timeout", 10),
        ("q1", 10),
        ("q2", 10),
    ]


def test_multi_query_falls_back_to_the_question_when_the_llm_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retriever = TableRetriever(TABLE)
    mq = MultiQueryRetriever(retriever, failing_llm)
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.rewrite"):
        hits = mq.retrieve("how to set a timeout", k=2)
    assert [(h.chunk.id, h.score) for h in hits] == [("a", 1.0), ("b", 0.9)]  # plain results
    assert [q for q, _, _ in retriever.calls] == ["how to set a timeout"]
    assert "TimeoutError" in caplog.text
    assert "question alone" in caplog.text


def test_multi_query_with_an_empty_reply_searches_the_question(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retriever = TableRetriever(TABLE)
    mq = MultiQueryRetriever(retriever, ScriptedLLM("\n1.\nHow to set a  TIMEOUT\n"))
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.rewrite"):
        hits = mq.retrieve("how to set a timeout", k=5)
    assert [h.chunk.id for h in hits] == ["a", "b", "c"]
    assert [q for q, _, _ in retriever.calls] == ["how to set a timeout"]
    assert "no new query" in caplog.text
    assert mq.retrieve("how to set a timeout", k=0) == []


def test_multi_query_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="n must be positive"):
        MultiQueryRetriever(TableRetriever({}), ScriptedLLM(""), n=0)
    with pytest.raises(ConfigurationError, match="fetch_k"):
        MultiQueryRetriever(TableRetriever({}), ScriptedLLM(""), fetch_k=0)
    with pytest.raises(ConfigurationError, match="question"):
        MultiQueryRetriever(TableRetriever({}), ScriptedLLM(""), prompt="Rewrite: {n}")


PASSAGE = "configure request timeout"  # the "passage" is a key of TABLE


def test_hyde_searches_with_the_generated_passage_and_the_question() -> None:
    llm = ScriptedLLM(f"  {PASSAGE}\n")
    retriever = TableRetriever(TABLE)
    hyde = HyDERetriever(retriever, llm)
    assert isinstance(hyde, Retriever)

    hits = hyde.retrieve("how to set a timeout", k=2)

    assert llm.prompts == [HYDE_PROMPT.format(question="how to set a timeout")]
    assert [q for q, _, _ in retriever.calls] == [PASSAGE, "how to set a timeout"]
    # passage ranking b, d; question ranking a, b, c -> b 1/61+1/62, a 1/61, d 1/62
    assert [h.chunk.id for h in hits] == ["b", "a"]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62)


def test_hyde_with_the_passage_alone() -> None:
    retriever = TableRetriever(TABLE)
    hyde = HyDERetriever(retriever, ScriptedLLM(PASSAGE), include_question=False)
    hits = hyde.retrieve("how to set a timeout", k=5, filters={"lang": "en"})
    assert retriever.calls == [(PASSAGE, 5, {"lang": "en"})]
    assert [(h.chunk.id, h.score) for h in hits] == [("b", 1.0), ("d", 0.9)]


@pytest.mark.parametrize("llm", [failing_llm, ScriptedLLM("   ")])
def test_hyde_falls_back_to_the_question(llm: Any, caplog: pytest.LogCaptureFixture) -> None:
    retriever = TableRetriever(TABLE)
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.rewrite"):
        hits = HyDERetriever(retriever, llm, include_question=False).retrieve(
            "how to set a timeout", k=3
        )
    assert [q for q, _, _ in retriever.calls] == ["how to set a timeout"]
    assert [h.chunk.id for h in hits] == ["a", "b", "c"]
    assert "HyDE" in caplog.text


def test_as_completion_accepts_the_usual_llm_objects() -> None:
    raw = ScriptedLLM("text")
    # CompletionGenerator: its completion function gets the prompt unchanged
    assert as_completion(CompletionGenerator(raw))("the prompt") == "text"
    assert raw.prompts == ["the prompt"]

    class Message:
        content = "from a chat model"

    class ChatModel:  # the LangChain shape: invoke() returns a message
        def invoke(self, prompt: str) -> Message:
            return Message()

    class PlainLLM:  # LangChain LLMs return the string itself
        def invoke(self, prompt: str) -> str:
            return prompt.upper()

    class BlocksModel:  # chat models that answer in content blocks
        def invoke(self, prompt: str) -> Message:
            message = Message()
            message.content = [  # type: ignore[assignment]
                {"type": "text", "text": "first "},
                {"type": "tool_use", "id": "x"},
                "second",
            ]
            return message

    assert as_completion(ChatModel())("p") == "from a chat model"
    assert as_completion(BlocksModel())("p") == "first second"
    assert as_completion(PlainLLM())("p") == "P"
    assert as_completion(str.upper)("p") == "P"

    with pytest.raises(ConfigurationError, match="cannot use int"):
        as_completion(42)


def test_a_refusing_generator_counts_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    # a ragkit Generator answers from contexts; with none it refuses
    retriever = TableRetriever(TABLE)
    for generator in (FakeGenerator(), ExtractiveGenerator()):
        mq = MultiQueryRetriever(retriever, generator)
        with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.rewrite"):
            assert mq.queries("how to set a timeout") == ["how to set a timeout"]
    assert "refused" in caplog.text


def test_a_non_string_reply_counts_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    mq = MultiQueryRetriever(TableRetriever(TABLE), lambda prompt: ["q1", "q2"])
    with caplog.at_level(logging.WARNING, logger="ragkit.retrieval.rewrite"):
        assert mq.queries("how to set a timeout") == ["how to set a timeout"]
    assert "expected str" in caplog.text
