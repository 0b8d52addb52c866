"""BEIR loading, the retrieval runner and ``ragkit eval beir``, on a tiny BEIR folder."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragkit import RAG, Chunk, ScoredChunk
from ragkit.cli import main
from ragkit.cli.eval import load_config, rag_options
from ragkit.errors import ConfigurationError
from ragkit.eval import (
    BeirDataset,
    RetrievalReport,
    document_scores,
    evaluate_retrieval,
    read_qrels,
)
from ragkit.eval.runner import percentile
from ragkit.protocols import Filters
from ragkit.testing import FakeEmbedder

CORPUS = [
    {"_id": "d1", "title": "Volcanoes", "text": "Lava flows from erupting volcanoes in Iceland."},
    {"_id": "d2", "title": "Penguins", "text": "Emperor penguins huddle in the Antarctic winter."},
    {"_id": "d3", "title": "Sourdough", "text": "A starter ferments flour with wild yeast."},
    {"_id": "d4", "title": "", "text": "Tides are caused by the pull of the moon."},
    {"_id": "d5", "title": "Chess", "text": "The Sicilian defence is a chess opening."},
    {"_id": "d6", "title": "Bees", "text": "Honey bees dance to show where flowers are.", "x": 1},
]
QUERIES = {
    "q1": "Why do volcanoes erupt lava?",
    "q2": "How do penguins survive the Antarctic winter?",
    "q3": "What causes the tides?",
    "q4": "sourdough starter yeast",
    "q5": "chess opening",
}
TEST_QRELS = "".join(
    "\t".join(row) + "\n"
    for row in [
        ("query-id", "corpus-id", "score"),
        ("q1", "d1", "1"),
        ("q2", "d2", "2"),
        ("q2", "d1", "0"),  # judged, not relevant
        ("q3", "d4", "1"),
        ("q4", "d3", "0"),  # no relevant document: skipped
        ("q9", "d5", "1"),  # no text in queries.jsonl
    ]
)


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    lines = [json.dumps(r) for r in CORPUS[:5]] + ["{not json", "[1, 2]", json.dumps(CORPUS[5])]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": q, "text": t, "metadata": {}}) + "\n" for q, t in QUERIES.items()
        ),
        encoding="utf-8",
    )
    (folder / "qrels" / "test.tsv").write_text(TEST_QRELS, encoding="utf-8")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq5\td5\t1\n")
    return folder


# --- loading ---------------------------------------------------------------------------


def test_corpus_streams_documents_with_title_and_provenance(
    beir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = BeirDataset(beir)
    assert data.name == "tiny"
    assert data.splits == ("test", "train")
    with caplog.at_level(logging.WARNING, logger="ragkit.eval.beir"):
        docs = list(data.corpus())
    assert [d.id for d in docs] == ["d1", "d2", "d3", "d4", "d5", "d6"]
    first = docs[0]
    assert first.source == "beir:tiny/d1"
    assert first.text == "Volcanoes\n\nLava flows from erupting volcanoes in Iceland."
    assert first.metadata == {"title": "Volcanoes"}
    assert docs[3].text == "Tides are caused by the pull of the moon."  # no title
    assert "corpus.jsonl:6: skipped, not JSON" in caplog.text
    assert "corpus.jsonl:7: skipped, not an object with an _id" in caplog.text


def test_split_pairs_queries_with_qrels_in_file_order(
    beir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ragkit.eval.beir"):
        queries, qrels = BeirDataset(beir).split("test")
    assert list(queries) == ["q1", "q2", "q3", "q4"]
    assert queries["q2"] == QUERIES["q2"]
    assert qrels == {
        "q1": {"d1": 1},
        "q2": {"d2": 2, "d1": 0},
        "q3": {"d4": 1},
        "q4": {"d3": 0},
    }
    assert "no text in queries.jsonl" in caplog.text
    assert "q9" in caplog.text
    assert BeirDataset(beir).split("train") == ({"q5": "chess opening"}, {"q5": {"d5": 1}})


def test_read_qrels_skips_header_and_bad_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("q1\td1\t1\nq1\td2\n\nq1\td3\tmaybe\nq2\td1\t-1\nq1\td1\t2\n")
    with caplog.at_level(logging.WARNING):
        qrels = read_qrels(path)
    assert qrels == {"q1": {"d1": 2}, "q2": {"d1": -1}}  # no header; last grade wins
    assert ":2: skipped" in caplog.text
    assert ":4: skipped, score 'maybe'" in caplog.text


def test_dataset_errors_name_the_problem(beir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing corpus\.jsonl, queries\.jsonl, qrels"):
        BeirDataset(tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match=r"no split 'dev'.*splits are: test, train"):
        BeirDataset(beir).qrels("dev")


# --- runner ----------------------------------------------------------------------------


def _hit(doc: str, score: float, start: int = 0) -> ScoredChunk:
    chunk = Chunk(f"{doc}-{start}", "text", doc, f"beir:x/{doc}", start, start + 4)
    return ScoredChunk(chunk, score)


class ScriptedRetriever:
    """Returns the same chunks for every query and records the k it was asked for."""

    def __init__(self, hits: Sequence[ScoredChunk]) -> None:
        self.hits = list(hits)
        self.asked: list[int] = []

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        self.asked.append(k)
        return self.hits[:k]


def test_document_score_is_the_best_chunk_score() -> None:
    hits = [_hit("a", 0.9), _hit("b", 0.8), _hit("a", 0.95, 10), _hit("c", 0.8), _hit("b", 0.1)]
    assert document_scores(hits) == {"a": 0.95, "b": 0.8, "c": 0.8}
    # the cut at k keeps the best documents, ties by id descending: c before b
    assert document_scores(hits, 2) == {"a": 0.95, "c": 0.8}


def test_runner_ranks_documents_by_best_chunk() -> None:
    retriever = ScriptedRetriever(
        [_hit("q1", 0.99), _hit("x", 0.9), _hit("y", 0.8, 0), _hit("r", 0.7), _hit("y", 0.6, 9)]
    )
    queries = {"q1": "first", "q2": "second", "q3": "nothing relevant"}
    qrels = {"q1": {"r": 1}, "q2": {"y": 1, "z": 1}, "q3": {"r": 0}}
    report = evaluate_retrieval(retriever, queries, qrels, k=3, measures=["mrr@10", "recall@3"])
    assert retriever.asked == [9, 9]  # chunk_k = 3 * k; q3 was not run
    assert report.queries == 2
    assert report.skipped == 1
    assert (report.k, report.chunk_k) == (3, 9)
    # q1: its own id is dropped (BEIR), ranking x, y, r -> r at 3
    assert report.per_query["q1"] == {"mrr@10": pytest.approx(1 / 3), "recall@3": 1.0}
    # q2: q1, x, y are the top 3 -> y at rank 3, z never found
    assert report.per_query["q2"] == {"mrr@10": pytest.approx(1 / 3), "recall@3": 0.5}
    assert report.metrics == {"mrr@10": pytest.approx(1 / 3), "recall@3": pytest.approx(0.75)}
    assert report.mean_documents == 3.0

    kept = evaluate_retrieval(
        retriever, {"q1": "first"}, qrels, k=1, chunk_k=2, ignore_identical_ids=False
    )
    assert retriever.asked[-1] == 2
    assert kept.metrics["mrr@10"] == 0.0  # q1 itself is ranked first and is not relevant
    assert set(kept.metrics) == {"ndcg@10", "recall@10", "recall@1", "mrr@10", "map@10"}


def test_runner_rejects_bad_depths() -> None:
    with pytest.raises(ConfigurationError, match="k must be positive"):
        evaluate_retrieval(ScriptedRetriever([]), {}, {}, k=0)
    with pytest.raises(ConfigurationError, match="chunk_k must be positive"):
        evaluate_retrieval(ScriptedRetriever([]), {}, {}, chunk_k=0)


def test_percentile_interpolates_linearly() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(v) for v in range(1, 21)], 95) == pytest.approx(19.05)
    assert percentile([1.0, 2.0], 100) == 2.0


def test_end_to_end_on_a_rag_with_fakes(beir: Path) -> None:
    data = BeirDataset(beir)
    progress: list[tuple[str, int]] = []
    with RAG(store="memory", embedder=FakeEmbedder()) as rag:
        report = rag.add(list(data.corpus()))
        assert report.ok
        assert len(report.added) == 6
        queries, qrels = data.split("test")
        result = evaluate_retrieval(
            rag, queries, qrels, k=10, progress=lambda q, n: progress.append((q, n))
        )
    assert isinstance(result, RetrievalReport)
    assert progress == [("q1", 1), ("q2", 2), ("q3", 3)]
    assert (result.queries, result.skipped) == (3, 1)
    assert list(result.metrics) == ["ndcg@10", "recall@10", "mrr@10", "map@10"]
    # each query shares its key words with its one relevant document only
    assert result.metrics["mrr@10"] == 1.0
    assert result.metrics["ndcg@10"] == pytest.approx(1.0)
    assert result.mean_documents == 6.0  # fewer documents than k: all of them
    assert result.queries_per_second > 0
    assert 0 < result.latency_p50_ms <= result.latency_p95_ms
    data_out = json.loads(json.dumps(result.to_dict()))
    assert data_out["per_query"]["q2"]["ndcg@10"] == pytest.approx(1.0)
    assert "3 queries: ndcg@10 1.0000" in str(result)


# --- configuration ---------------------------------------------------------------------


def test_config_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"chunk_size": 64, "store": "memory"}')
    (tmp_path / "c.toml").write_text('chunk_size = 64\nstore = "memory"\n')
    assert load_config(tmp_path / "c.json") == load_config(tmp_path / "c.toml")
    (tmp_path / "bad.toml").write_text("chunk_size = \n")
    with pytest.raises(ConfigurationError, match="is not valid"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigurationError, match="must hold an object"):
        load_config(tmp_path / "list.json")
    with pytest.raises(ConfigurationError, match=r"must end in \.json or \.toml"):
        load_config(tmp_path / "c.ini")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_config(tmp_path / "missing.json")


def test_rag_options_build_the_chunker_and_pass_plain_values() -> None:
    options = rag_options({"chunk_size": 64, "chunk_overlap": 8, "store": "memory", "k": 3})
    chunker = options.pop("chunker")
    assert (chunker.chunk_size, chunker.chunk_overlap) == (64, 8)
    assert options == {"store": "memory", "k": 3}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"temperature": 0.2}, "unknown setting 'temperature'"),
        ({"retriever": "bm25"}, "unknown setting 'retriever' .*it takes a component"),
        ({"path": "/tmp/kb"}, "unknown setting 'path'"),
        ({"store": {"kind": "memory"}}, "store must be a plain value"),
        ({"embedder": {"name": "x"}}, r"\[embedder\] unknown key 'name'"),
        ({"chunk_size": 10, "chunk_overlap": 20}, "chunk_overlap"),
    ],
)
def test_rag_options_reject_what_a_config_cannot_say(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        rag_options(config)


def test_retrieval_option_follows_what_rag_accepts() -> None:
    if "retrieval" in inspect.signature(RAG).parameters:
        assert rag_options({"retrieval": "dense"}, "hybrid") == {"retrieval": "hybrid"}
    else:
        with pytest.raises(ConfigurationError, match="'retrieval' cannot be used"):
            rag_options({}, "hybrid")
    assert rag_options({}) == {}  # nothing passed when nothing is asked


# --- the command -----------------------------------------------------------------------


@pytest.fixture
def fake_default_embedder(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    """Make the CLI's default embedder a fake, shared across runs to count embeddings."""
    fake = FakeEmbedder()
    monkeypatch.setattr("ragkit.embeddings.SentenceTransformerEmbedder", lambda *a, **kw: fake)
    return fake


def test_cli_eval_beir_prints_a_table_and_writes_json(
    beir: Path,
    tmp_path: Path,
    fake_default_embedder: FakeEmbedder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out" / "results.json"
    config = tmp_path / "config.toml"
    config.write_text("chunk_size = 64\nchunk_overlap = 8\n")
    kb = tmp_path / "kb"
    argv = ["eval", "beir", str(beir), "--kb", str(kb), "--config", str(config), "--k", "5"]
    assert main([*argv, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tiny (test): 3 queries, 6 documents" in printed
    assert "chunk_size=64" in printed
    lines = printed.splitlines()
    table = [line for line in lines if line.startswith("  ")]
    assert [line.split()[0] for line in table] == [
        "nDCG@10",
        "Recall@10",
        "Recall@5",
        "MRR@10",
        "MAP@10",
        "queries/s",
        "latency",
        "latency",
    ]
    assert len({len(line) for line in table}) == 1  # aligned
    assert f"results: {out}" in printed

    results = json.loads(out.read_text())
    assert results["dataset"] == "tiny"
    assert results["split"] == "test"
    assert results["config"] == {"chunk_size": 64, "chunk_overlap": 8}
    assert results["embedder"] == "fake-hash-64"
    method = inspect.signature(RAG).parameters.get("retrieval")
    assert results["retrieval_method"] == (method.default if method else "dense")
    assert results["kb"] == str(kb)
    assert results["index"]["documents"] == 6
    assert results["index"]["added"] == 6
    assert results["index"]["chunks"] >= 6
    retrieval = results["retrieval"]
    assert retrieval["queries"] == 3
    assert retrieval["k"] == 5
    assert retrieval["chunk_k"] == 15
    assert retrieval["metrics"]["mrr@10"] == 1.0
    assert set(retrieval["per_query"]) == {"q1", "q2", "q3"}
    embedded = fake_default_embedder.texts_embedded

    # a second run on the same kb finds everything indexed: nothing is embedded again
    assert main([*argv, "--output", str(out), "--limit", "2"]) == 0
    capsys.readouterr()
    again = json.loads(out.read_text())
    assert again["index"]["added"] == 0
    assert again["index"]["unchanged"] == 6
    assert again["retrieval"]["queries"] == 2
    assert fake_default_embedder.texts_embedded == embedded


def test_cli_eval_default_output_and_errors(
    beir: Path,
    tmp_path: Path,
    fake_default_embedder: FakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "beir", str(beir), "--split", "train"]) == 0
    assert "results: eval-tiny-train.json" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval-tiny-train.json").read_text())["kb"] is None

    assert main(["eval", "beir", str(beir), "--split", "dev"]) == 2
    assert "ragkit: error:" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"colour": "blue"}')
    assert main(["eval", "beir", str(beir), "--config", str(bad)]) == 2
    assert "unknown setting 'colour'" in capsys.readouterr().err
    assert main(["eval", "beir", str(beir), "--limit", "0"]) == 2
