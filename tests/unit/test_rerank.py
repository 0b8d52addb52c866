"""MMR, BM25 and CrossEncoderReranker: math worked by hand on tiny inputs, and the checks."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Reranker
from ragkit.reranking import BM25Reranker, CrossEncoderReranker, MMRReranker
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, ScoredChunk


class TableEmbedder:
    """Looks each text up in a table of hand-made vectors."""

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = {text: np.asarray(v, dtype=np.float32) for text, v in table.items()}

    @property
    def model_id(self) -> str:
        return "table"

    @property
    def dimension(self) -> int:
        return len(next(iter(self.table.values())))

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.stack([self.table[t] for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self.table[text]


def _hit(text: str, score: float = 0.0) -> ScoredChunk:
    chunk = Chunk(id=f"id-{text}", text=text, document_id="d", source="s.txt", start=0, end=1)
    return ScoredChunk(chunk, score)


# Relevance to q (1, 0, 0): a 0.8, a2 0.8 (a copy of a), c 0.6, b 0.6, d 0.
# Pairwise: a·b 0, a·c 0.48, a·d 0, b·c 0.36, b·d 0, c·d 0.8.
VECTORS = {
    "q": (1.0, 0.0, 0.0),
    "a": (0.8, 0.6, 0.0),
    "a2": (0.8, 0.6, 0.0),
    "c": (0.6, 0.0, 0.8),
    "b": (0.6, -0.8, 0.0),
    "d": (0.0, 0.0, 1.0),
}
HITS = [_hit(t) for t in ("a", "a2", "c", "b", "d")]


def _ranked(reranker: MMRReranker, k: int = 5) -> tuple[list[str], list[float]]:
    out = reranker.rerank("q", HITS, k)
    return [h.chunk.text for h in out], [h.score for h in out]


def test_mmr_is_a_reranker() -> None:
    assert isinstance(MMRReranker(FakeEmbedder()), Reranker)


def test_mmr_lambda_one_is_pure_relevance() -> None:
    order, scores = _ranked(MMRReranker(TableEmbedder(VECTORS), lambda_=1.0))
    # equal relevance keeps the retriever's order (a before a2, c before b)
    assert order == ["a", "a2", "c", "b", "d"]
    assert scores == pytest.approx([0.8, 0.8, 0.6, 0.6, 0.0])


def test_mmr_half_pushes_the_duplicate_down() -> None:
    order, scores = _ranked(MMRReranker(TableEmbedder(VECTORS), lambda_=0.5))
    # 1: a 0.4 (tie with a2, first in order)
    # 2: a2 0.4-0.5=-0.1, c 0.3-0.24=0.06, b 0.3-0=0.3, d 0-0=0 -> b
    # 3: a2 -0.1, c 0.3-0.24=0.06, d 0 -> c
    # 4: a2 -0.1, d 0-0.4=-0.4 -> a2, then d
    assert order == ["a", "b", "c", "a2", "d"]
    assert scores == pytest.approx([0.4, 0.3, 0.06, -0.1, -0.4])


def test_mmr_lambda_zero_maximises_diversity() -> None:
    order, scores = _ranked(MMRReranker(TableEmbedder(VECTORS), lambda_=0.0))
    # 1: all 0, the most relevant wins the tie -> a
    # 2: a2 -1, c -0.48, b 0, d 0 -> b (more relevant than d)
    # 3: a2 -1, c -0.48, d 0 -> d (irrelevant, but unlike anything picked)
    # 4: a2 -1, c -0.8 -> c, then a2
    assert order == ["a", "b", "d", "c", "a2"]
    assert scores == pytest.approx([0.0, 0.0, 0.0, -0.8, -1.0])


def test_mmr_keeps_k_and_the_chunks_themselves() -> None:
    reranker = MMRReranker(TableEmbedder(VECTORS), lambda_=0.5)
    out = reranker.rerank("q", HITS, 2)
    assert [h.chunk for h in out] == [HITS[0].chunk, HITS[3].chunk]
    assert reranker.rerank("q", HITS, 0) == []
    assert reranker.rerank("q", [], 3) == []
    assert len(reranker.rerank("q", HITS, 50)) == len(HITS)


def test_mmr_scores_never_increase() -> None:
    texts = [f"topic {i % 4} note {i} about {'cache' if i % 3 else 'timeouts'}" for i in range(30)]
    for lambda_ in (0.0, 0.3, 0.7, 1.0):
        out = MMRReranker(FakeEmbedder(dimension=16), lambda_).rerank(
            "cache timeouts", [_hit(t) for t in texts], 30
        )
        scores = [h.score for h in out]
        assert scores == sorted(scores, reverse=True)
        assert sorted(h.chunk.text for h in out) == sorted(texts)


def test_mmr_rejects_lambda_outside_zero_one() -> None:
    with pytest.raises(ConfigurationError, match="lambda_"):
        MMRReranker(FakeEmbedder(), lambda_=1.5)
    with pytest.raises(ConfigurationError, match="lambda_"):
        MMRReranker(FakeEmbedder(), lambda_=-0.1)


def test_cross_encoder_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigurationError, match="no-such-model") as info:
        CrossEncoderReranker(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigurationError, match="does not exist"):
        CrossEncoderReranker(missing)  # a Path is always a local directory
    with pytest.raises(ConfigurationError, match="does not exist"):
        CrossEncoderReranker("./models/ms-marco")


def test_cross_encoder_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"config\.json"):
        CrossEncoderReranker(tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        CrossEncoderReranker(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 0}, "max_length"),
        ({"activation": "softmax"}, "activation"),
        ({"weight": 1.5}, "weight"),
        ({"weight": -0.1}, "weight"),
    ],
)
def test_cross_encoder_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2", **kwargs)  # type: ignore[arg-type]


def test_cross_encoder_loads_nothing_until_used() -> None:
    code = (
        "import sys\n"
        "from ragkit.reranking import CrossEncoderReranker\n"
        "r = CrossEncoderReranker('cross-encoder/ms-marco-MiniLM-L-6-v2')\n"
        "print(r.model_name, [m for m in ('torch', 'sentence_transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cross-encoder/ms-marco-MiniLM-L-6-v2", "[]"]


class TableCrossEncoder(CrossEncoderReranker):
    """A cross-encoder whose scores come from a table (``score`` is the model call)."""

    def __init__(self, scores: dict[str, float], weight: float | None = None) -> None:
        super().__init__("table-model", weight=weight)
        self.table = scores
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.calls.append((query, list(texts)))
        return [self.table[t] for t in texts]


def test_cross_encoder_orders_by_its_scores_and_keeps_k() -> None:
    reranker = TableCrossEncoder({"a": 0.1, "b": 2.5, "c": -1.0, "d": 2.5})
    hits = [_hit(t, score=1.0 - i / 10) for i, t in enumerate("abcd")]
    out = reranker.rerank("question", hits, 3)
    # the retriever's scores are replaced; the tie b/d keeps the retriever's order
    assert [(h.chunk.text, h.score) for h in out] == [("b", 2.5), ("d", 2.5), ("a", 0.1)]
    assert reranker.calls == [("question", ["a", "b", "c", "d"])]
    assert reranker.rerank("question", hits, 0) == []
    assert reranker.rerank("question", [], 3) == []
    assert len(reranker.calls) == 1  # nothing to score, no model call


def test_cross_encoder_weight_mixes_in_the_retrievers_scores() -> None:
    hits = [_hit("alpha", 0.9), _hit("beta", 0.8), _hit("gamma", 0.7)]
    table = {"alpha": 0.0, "beta": 0.0, "gamma": 3.0}
    assert TableCrossEncoder(table).weight == 1.0  # a hub name records nothing: alone
    mixed = TableCrossEncoder(table, weight=0.5).rerank("q", hits, 3)
    # z(retriever) = (1.2247, 0, -1.2247); z(cross-encoder) = (-0.7071, -0.7071, 1.4142)
    assert [h.chunk.text for h in mixed] == ["alpha", "gamma", "beta"]
    assert [h.score for h in mixed] == pytest.approx([0.2588, 0.0947, -0.3536], abs=1e-4)
    keep = TableCrossEncoder(table, weight=0.0).rerank("q", hits, 3)
    assert [h.chunk.text for h in keep] == ["alpha", "beta", "gamma"]


def test_cross_encoder_reads_the_weight_its_training_recorded(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    assert CrossEncoderReranker(tmp_path).weight == 1.0  # nothing recorded
    (tmp_path / "ragkit_model.json").write_text('{"weight": 0.3}', encoding="utf-8")
    assert CrossEncoderReranker(tmp_path).weight == 0.3
    assert CrossEncoderReranker(tmp_path, weight=0.8).weight == 0.8  # given wins
    (tmp_path / "ragkit_model.json").write_text('{"weight": 7}', encoding="utf-8")
    assert CrossEncoderReranker(tmp_path).weight == 1.0  # out of range: ignored


def test_bm25_scores_by_hand() -> None:
    reranker = BM25Reranker(tokenizer=str.split, k1=0.9, b=0.4)
    scores = reranker.bm25("cat", ["cat cat dog", "dog", "cat bird"])
    # n=3, df(cat)=2: idf = ln(1 + 1.5/2.5); lengths 3, 1, 2, average 2
    idf = math.log(1.6)
    tf2 = 2 * 1.9 / (2 + 0.9 * (0.6 + 0.4 * 3 / 2))
    tf1 = 1 * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 2 / 2))
    assert scores == pytest.approx([idf * tf2, 0.0, idf * tf1])
    assert reranker.bm25("", ["cat"]) == [0.0]
    assert reranker.bm25("cat", []) == []


def test_bm25_reranker_mixes_standardized_scores() -> None:
    hits = [_hit("alpha", 0.9), _hit("beta", 0.8), _hit("gamma zeta", 0.7)]
    out = BM25Reranker(0.5, tokenizer=str.split).rerank("zeta", hits, 3)
    # z(retriever) = (1.2247, 0, -1.2247); BM25 matches only gamma: z = (-0.7071, -0.7071,
    # 1.4142); mixed = half of each sum
    assert [h.chunk.text for h in out] == ["alpha", "gamma zeta", "beta"]
    assert [h.score for h in out] == pytest.approx([0.2588, 0.0947, -0.3536], abs=1e-4)


def test_bm25_reranker_weight_ends() -> None:
    hits = [_hit("alpha", 0.9), _hit("beta zeta", 0.8), _hit("gamma zeta zeta", 0.7)]
    keep = BM25Reranker(0.0, tokenizer=str.split).rerank("zeta", hits, 3)
    assert [h.chunk.text for h in keep] == ["alpha", "beta zeta", "gamma zeta zeta"]
    lexical = BM25Reranker(1.0, tokenizer=str.split).rerank("zeta", hits, 2)
    assert [h.chunk.text for h in lexical] == ["gamma zeta zeta", "beta zeta"]
    # a query without terms (stopwords only) keeps the retriever's order
    stop = BM25Reranker(0.5).rerank("the of and", hits, 3)
    assert [h.chunk.text for h in stop] == ["alpha", "beta zeta", "gamma zeta zeta"]


def test_bm25_reranker_default_tokenizer_stems() -> None:
    reranker = BM25Reranker()
    assert isinstance(reranker, Reranker)
    high, none = reranker.bm25("Pooling connections", ["The connection pool", "API tokens"])
    assert high > 0.0
    assert none == 0.0
    assert reranker.rerank("x", [], 3) == []
    assert reranker.rerank("x", [_hit("x", 1.0)], 0) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"weight": 1.5}, "weight"), ({"k1": -1.0}, "k1"), ({"b": 2.0}, "b must")],
)
def test_bm25_reranker_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BM25Reranker(**kwargs)
