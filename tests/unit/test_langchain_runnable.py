"""A ragkit pipeline as a LangChain Runnable: invoke, stream, batch, citations, LCEL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragkit import RAG, Document
from ragkit.testing import FakeEmbedder

pytest.importorskip("langchain_core.runnables")

from ragkit.adapters.langchain import as_runnable

TEXT = (
    "Checks by state.\n\n"
    "The default timeout is five seconds.\n\n"
    "The connection pool holds ten connections per host."
)


@pytest.fixture
def rag() -> Iterator[RAG]:
    with RAG(None, embedder=FakeEmbedder(), retrieval="keyword", verify=False) as rag:
        rag.add([Document(text=TEXT, source="notes.txt")])
        yield rag


def test_invoke_returns_the_answer_and_its_citations(rag: RAG) -> None:
    out = as_runnable(rag, k=2).invoke("What is the default timeout?")
    direct = rag.ask("What is the default timeout?", k=2)
    assert out["answer"] == direct.text
    assert "five seconds" in out["answer"]
    assert out["citations"]
    first = out["citations"][0]
    assert TEXT[first["start"] : first["end"]] == first["quote"]
    assert first["source"] == "notes.txt"
    assert first["location"] == "notes.txt"
    assert f"[{first['marker']}]" in out["answer"]
    assert out["refused"] is False


def test_stream_merges_to_what_invoke_returns(rag: RAG) -> None:
    runnable = as_runnable(rag)
    chunks = list(runnable.stream({"question": "How many connections does the pool hold?"}))
    assert len(chunks) >= 2
    text = "".join(c.get("answer", "") for c in chunks)
    assert text == runnable.invoke("How many connections does the pool hold?")["answer"]
    assert "citations" in chunks[-1]
    assert all(set(c) == {"answer"} for c in chunks[:-1])


def test_batch_and_lcel_composition(rag: RAG) -> None:
    from langchain_core.runnables import RunnableLambda

    runnable = as_runnable(rag)
    outs = runnable.batch(["What is the default timeout?", {"input": "pool connections", "k": 1}])
    assert "five seconds" in outs[0]["answer"]
    assert "ten" in outs[1]["answer"]
    chain = RunnableLambda(lambda q: q.strip()) | runnable | RunnableLambda(lambda o: o["answer"])
    assert "five seconds" in chain.invoke("  What is the default timeout? ")


def test_filters_from_the_input_reach_retrieval(rag: RAG) -> None:
    out = as_runnable(rag).invoke(
        {"question": "What is the default timeout?", "filters": {"source": "other.txt"}}
    )
    assert out["citations"] == []


def test_a_wrong_input_says_what_it_takes(rag: RAG) -> None:
    with pytest.raises(TypeError, match="a dict with 'question'"):
        as_runnable(rag).invoke(42)
