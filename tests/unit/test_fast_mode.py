"""The fast mode end to end on a fake embedder: ``finetune_adapter`` judges and promotes
a query adapter, the kb records it, and the CLI runs both steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from ragkit import RAG
from ragkit.errors import ConfigurationError
from ragkit.testing import FakeEmbedder
from ragkit.training.adapter import ADAPTER_FILE, AdaptedEmbedder, load_query_adapter
from ragkit.training.fast import finetune_adapter
from ragkit.training.pairs import Pair
from ragkit.training.promote import MODEL_FILE, REPORT_FILE
from ragkit.types import Document

TOPICS = 48
# Every query opens with the same polite words, and a few "trap" passages are made of
# them: the plain bag of words ranks a trap above the topic's own passage. What helps
# is the same for every topic (look past the polite words), so a linear map on query
# vectors learnt on some documents carries over to held-out ones.
POLITE = "please kindly tell me about"
PASSAGE = "topic{i} word{i} fact{i} detail{i}."


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """A 64-wide matrix gains nothing from torch's threads (they only contend)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _kb(tmp_path: Path) -> RAG:
    # Dense retrieval: BM25 would match the polite words too, adapter or not.
    rag = RAG(tmp_path / "kb", embedder=FakeEmbedder(), store="memory", retrieval="dense")
    docs = [Document(PASSAGE.format(i=i), f"t{i}.txt") for i in range(TOPICS)]
    traps = [Document(f"{POLITE} {POLITE} anything {n}.", f"trap{n}.txt") for n in range(3)]
    rag.add(docs + traps)
    return rag


def _pairs(topics: range = range(TOPICS)) -> list[Pair]:
    """Each topic's polite question with its passage."""
    return [Pair(f"{POLITE} topic{i}", PASSAGE.format(i=i), document_id=f"t{i}") for i in topics]


def _bad_pairs(topics: range) -> list[Pair]:
    """A deliberately bad set: each topic's name sent to a trap passage."""
    return [
        Pair(f"topic{i}", f"{POLITE} {POLITE} anything {i % 3}.", document_id=f"t{i}")
        for i in topics
    ]


#: A small fit: one identity weight (the default 200 steps at least: 200 passes here).
FIT = {"weights": (0.01,), "heldout_fraction": 0.25}


def test_an_adapter_that_helps_held_out_documents_is_promoted(tmp_path: Path) -> None:
    with _kb(tmp_path) as rag:
        report = finetune_adapter(tmp_path / "adapter", kb=rag, pairs=_pairs(), **FIT)
    assert report.kind == "adapter"
    assert report.promoted, report.reason
    assert report.trained_score > report.base_score + 0.3
    assert report.gain_lower is not None
    assert report.gain_lower > 0
    assert report.pairs["heldout"] >= 10
    assert report.settings["identity_weight"] == 0.01
    record = json.loads((tmp_path / "adapter" / MODEL_FILE).read_text())
    assert record["kind"] == "adapter"
    assert record["identity_weight"] == 0.01
    assert load_query_adapter(tmp_path / "adapter").model_id == FakeEmbedder().model_id


def test_a_deliberately_bad_training_set_writes_no_adapter(tmp_path: Path) -> None:
    # Trained to send questions to the traps, judged on where they belong.
    judge = _pairs(range(36, TOPICS))
    with _kb(tmp_path) as rag:
        report = finetune_adapter(
            tmp_path / "adapter", kb=rag, pairs=_bad_pairs(range(36)),
            eval_pairs=judge, weights=(0.01,),
        )  # fmt: skip
    assert not report.promoted
    assert report.trained_score < report.base_score
    assert "without a query adapter" in report.reason
    assert not (tmp_path / "adapter" / ADAPTER_FILE).exists()
    assert (tmp_path / "adapter" / REPORT_FILE).exists()
    with pytest.raises(ConfigurationError, match="holds no query adapter"):
        load_query_adapter(tmp_path / "adapter")


def test_the_kb_records_its_adapter_and_applies_it_to_retrieval_only(tmp_path: Path) -> None:
    with _kb(tmp_path) as rag:
        fitted = finetune_adapter(tmp_path / "adapter", kb=rag, pairs=_pairs(), **FIT)
        assert fitted.promoted
        question = f"{POLITE} topic3"
        assert rag.retrieve(question, k=1)[0].chunk.source.startswith("trap")
        rag.use_query_adapter(tmp_path / "adapter")
        assert rag.retrieve(question, k=1)[0].chunk.source == "t3.txt"
    # Opened again: the recorded adapter is applied to the kb's model; then taken off.
    with RAG(tmp_path / "kb", embedder=FakeEmbedder(), store="memory", retrieval="dense") as again:
        assert isinstance(again.embedder, AdaptedEmbedder)
        assert again.retrieve(question, k=1)[0].chunk.source == "t3.txt"
        vectors = again.embedder.embed_documents(["topic3 word3"])
        assert np.allclose(vectors, FakeEmbedder().embed_documents(["topic3 word3"]))
        again.use_query_adapter(None)
        assert again.retrieve(question, k=1)[0].chunk.source.startswith("trap")
    with RAG(tmp_path / "kb", embedder=FakeEmbedder(), store="memory", retrieval="dense") as plain:
        assert not isinstance(plain.embedder, AdaptedEmbedder)
