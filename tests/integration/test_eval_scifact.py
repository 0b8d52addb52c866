"""The evaluation harness on a slice of BEIR SciFact, with the real MiniLM."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.eval import BeirDataset, evaluate_retrieval

pytestmark = pytest.mark.integration

SHARED = Path(
    os.environ.get("RAGKIT_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
SCIFACT = SHARED / "bench" / "scifact"

QUERIES = 20
CORPUS = 120


@pytest.fixture(scope="module")
def scifact() -> BeirDataset:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT} (set RAGKIT_SHARED)")
    return BeirDataset(SCIFACT)


def test_minilm_on_a_scifact_slice(scifact: BeirDataset, minilm) -> None:  # type: ignore[no-untyped-def]
    queries, qrels = scifact.split("test")
    assert len(queries) == 300  # the official test split
    queries = dict(itertools.islice(queries.items(), QUERIES))
    wanted = {doc for q in queries for doc in qrels[q]}
    # the documents judged for these queries, then distractors in corpus order
    documents = [d for d in scifact.corpus() if d.id in wanted]
    distractors = (d for d in scifact.corpus() if d.id not in wanted)
    documents += list(itertools.islice(distractors, CORPUS - len(documents)))
    assert len(documents) == CORPUS

    with RAG(store="memory", embedder=minilm) as rag:
        assert rag.add(documents).ok
        report = evaluate_retrieval(rag, queries, qrels, k=100)

    assert report.queries == QUERIES
    assert report.skipped == 0
    assert set(report.metrics) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map@10"}
    # all-MiniLM-L6-v2 scores about 0.65 nDCG@10 on the full 5,183 documents; a
    # 120-document slice is easier, a broken harness (ids, aggregation) scores near 0.
    assert report.metrics["ndcg@10"] > 0.5
    assert report.metrics["recall@100"] > 0.9
    assert report.metrics["map@10"] <= report.metrics["mrr@10"]
    assert 90 <= report.mean_documents <= 100  # chunks of 300 may span fewer documents
    assert report.queries_per_second > 0
    assert report.latency_p95_ms >= report.latency_p50_ms > 0
    assert json.loads(json.dumps(report.to_dict()))["queries"] == QUERIES
