"""ragkit.training, step by step on tiny data (no model: fakes and plain vectors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragkit import RAG
from ragkit.embeddings import CachedEmbedder
from ragkit.embeddings._encoder import PrefixedEncoder
from ragkit.errors import ConfigurationError, EmbedderMismatchError
from ragkit.testing import FakeEmbedder
from ragkit.training.adapter import AdaptedEmbedder, QueryAdapter, train_query_adapter
from ragkit.training.evaluate import HeldOut, pool_ranker, split_by_document
from ragkit.training.negatives import (
    Candidate,
    NegativeRules,
    embed_queries,
    mine_negatives,
    select_negatives,
)
from ragkit.training.pairs import (
    Pair,
    inverse_cloze_pairs,
    kb_chunks,
    read_pairs,
    synthetic_pairs,
    write_pairs,
)
from ragkit.training.promote import (
    MODEL_FILE,
    REPORT_FILE,
    check_output,
    gain_lower_bound,
    model_id_of,
    promote,
)
from ragkit.training.train import TrainConfig, _arguments
from ragkit.types import Document

TOPICS = {
    "volcano": "Volcanoes erupt molten lava. Magma rises through the crust of the earth. "
    "Ash clouds disrupt flights for many days.",
    "glacier": "Glaciers carve deep valleys in mountains. Ice flows slowly downhill under "
    "its own weight. Meltwater feeds the rivers below.",
    "piano": "The piano has eighty eight keys. Hammers strike the strings inside the case. "
    "Pedals sustain or soften every note.",
    "coffee": "Coffee beans are roasted before brewing. Caffeine keeps drinkers awake at "
    "night. Espresso is forced through fine grounds.",
}


# -- pairs ---------------------------------------------------------------------------


def test_pairs_round_trip_through_jsonl(tmp_path: Path) -> None:
    pairs = [
        Pair("what erupts?", "Volcanoes erupt.", ("Glaciers flow.",), "volcano"),
        Pair("how many keys?", "Eighty eight keys."),
    ]
    path = tmp_path / "pairs.jsonl"
    assert write_pairs(pairs, path) == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1]) == {"query": "how many keys?", "positive": "Eighty eight keys."}
    assert read_pairs(path) == pairs


def test_read_pairs_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "positive": "p"}\n\n{"query": "q"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"pairs.jsonl:3: \"positive\""):
        read_pairs(path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"pairs.jsonl:1: not JSON"):
        read_pairs(path)


@pytest.fixture
def rag(tmp_path: Path) -> RAG:
    kb = RAG(tmp_path / "kb", store="memory", embedder=FakeEmbedder(), retrieval="dense")
    kb.add([Document(text=text, source=name) for name, text in TOPICS.items()])
    return kb


def test_inverse_cloze_takes_a_sentence_out_of_its_chunk(rag: RAG) -> None:
    chunks = kb_chunks(rag)
    pairs = inverse_cloze_pairs(chunks, keep_sentence=0.0, min_words=4, seed=1)
    assert len(pairs) == len(chunks) == 4
    by_doc = {c.document_id: c.text for c in chunks}
    for pair in pairs:
        source = by_doc[pair.document_id]
        assert pair.query in source
        assert pair.query not in pair.positive
        assert pair.positive in " ".join(source.replace(pair.query, " ").split())
    # the same seed makes the same pairs
    assert inverse_cloze_pairs(chunks, keep_sentence=0.0, min_words=4, seed=1) == pairs


class QuestionWriter:
    """A fake LLM: a good question for the volcano passage, an off-topic one for the
    piano passage, a copied sentence for the glacier passage, a too short one else."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if "lava" in prompt:
            return "Question: What rises through the crust when volcanoes erupt lava?\nmore"
        if "eighty" in prompt:
            return "Why is espresso forced through fine roasted coffee grounds?"
        if "Glaciers" in prompt:
            return "Glaciers carve deep valleys in mountains."
        return "Why?"


def test_round_trip_filter_keeps_questions_that_find_their_chunk(rag: RAG) -> None:
    chunks = kb_chunks(rag)
    writer = QuestionWriter()
    pairs = synthetic_pairs(chunks, writer, rag, attempts=2, top_k=1)
    volcano = next(c for c in chunks if c.source == "volcano")
    assert [(p.document_id, p.query, p.positive) for p in pairs] == [
        (
            volcano.document_id,
            "What rises through the crust when volcanoes erupt lava?",
            volcano.text,
        )
    ]
    # each chunk was asked until it had a question or ran out of attempts
    assert len(writer.prompts) == 1 + 2 + 2 + 2


# -- negatives -------------------------------------------------------------------------


def test_negative_rules_skip_top_ranks_copies_and_near_positives() -> None:
    rules = NegativeRules(count=2, skip_top=1, max_similarity=0.9, margin=0.9)
    candidates = [
        Candidate("own document", "doc-a", 0.95, 0.99),
        Candidate("other positive", "doc-b", 0.9, 0.5),
        Candidate("top rank", "doc-c", 0.85, 0.3),
        Candidate("near copy", "doc-d", 0.7, 0.95),
        Candidate("too close to the positive's score", "doc-e", 0.75, 0.2),
        Candidate("hard negative", "doc-f", 0.6, 0.4),
        Candidate("hard negative", "doc-g", 0.55, 0.4),
        Candidate("second negative", "doc-h", 0.5, 0.1),
        Candidate("third negative", "doc-i", 0.4, 0.1),
    ]
    chosen = select_negatives(
        candidates,
        positive="the positive",
        positive_score=0.8,
        excluded_documents={"doc-a", "doc-b"},
        rules=rules,
    )
    assert chosen == ["hard negative", "second negative"]


def test_mining_never_takes_a_positive_of_the_same_query(rag: RAG) -> None:
    corpus = [(c.text, c.document_id) for c in kb_chunks(rag)]
    pairs = [
        Pair("volcano lava erupt", corpus[3][0], document_id=corpus[3][1]),
        Pair("volcano lava erupt", corpus[0][0], document_id=corpus[0][1]),
    ]
    rules = NegativeRules(count=3, skip_top=0, max_similarity=1.01, margin=10.0)
    mined = mine_negatives(pairs, corpus, FakeEmbedder(), rules)
    positives = {p.positive for p in pairs}
    for pair in mined:
        assert pair.negatives
        assert not positives & set(pair.negatives)
        assert len(set(pair.negatives)) == len(pair.negatives)


# -- evaluate --------------------------------------------------------------------------


def test_negatives_can_come_from_another_retrievers_order() -> None:
    """A reranker's negatives mined by its own first stage: ``rank`` decides the order,
    the embedder's cosines still filter."""
    corpus = [(t, name) for name, t in TOPICS.items()]
    pair = Pair("glacier meltwater", TOPICS["glacier"], (), "glacier")
    rules = NegativeRules(count=1, depth=4, skip_top=0, max_similarity=1.1, margin=100.0)
    by_dense = mine_negatives([pair], corpus, FakeEmbedder(), rules)[0].negatives
    wanted = next(t for name, t in TOPICS.items() if t not in by_dense and name != "glacier")

    def rank(query: str, depth: int) -> list[str]:
        assert query == "glacier meltwater"
        return ["not in the corpus", TOPICS["glacier"], wanted][:depth]

    mined = mine_negatives([pair], corpus, FakeEmbedder(), rules, rank=rank)
    assert mined[0].negatives == (wanted,)


def test_split_by_document_keeps_documents_whole() -> None:
    pairs = [Pair(f"q{i}", f"p{i}", document_id=f"d{i % 7}") for i in range(40)]
    train, held = split_by_document(pairs, fraction=0.25, seed=3)
    assert len(train) + len(held) == 40
    assert {p.document_id for p in train}.isdisjoint({p.document_id for p in held})
    assert 8 <= len(held) <= 16
    assert split_by_document(pairs, fraction=0.25, seed=3) == (train, held)
    # without document ids the positive's text stands for the document
    loose = [Pair("a", "same passage"), Pair("b", "same passage"), Pair("c", "other")]
    train, held = split_by_document(loose, fraction=0.5)
    assert {p.positive for p in train}.isdisjoint({p.positive for p in held})
    with pytest.raises(ConfigurationError, match="single document"):
        split_by_document([Pair("a", "x"), Pair("b", "x")])


def test_a_query_held_out_with_one_document_is_not_trained_on_with_another() -> None:
    """A claim two abstracts support: held out with one of them, it must not be trained
    on with the other (the held-out score would measure recall of a training query),
    and the other abstract counts as relevant to it, not as a wrong answer."""
    pairs = [Pair(f"q{i}", f"p{i}", document_id=f"d{i}") for i in range(20)]
    shared = [Pair("shared claim", f"p{i}-shared", document_id=f"d{i}") for i in range(20)]
    pairs += shared
    train, held = split_by_document(pairs, fraction=0.2, seed=0)
    assert len(train) + len(held) == len(pairs)
    assert {p.query for p in train}.isdisjoint({p.query for p in held})
    # the shared claim had a pair on the held-out side, so all 20 of its pairs moved
    assert [p for p in held if p.query == "shared claim"] == shared
    task = HeldOut.build(held)
    (qid,) = [q for q, text in task.queries.items() if text == "shared claim"]
    assert {task.corpus[pid] for pid in task.relevant[qid]} == {p.positive for p in shared}
    # documents still stay whole apart from the moved pairs
    held_docs = {p.document_id for p in held if p.query != "shared claim"}
    assert held_docs.isdisjoint({p.document_id for p in train})
    with pytest.raises(ConfigurationError, match="nothing is left to train on"):
        split_by_document([Pair("one", f"p{i}", document_id=f"d{i}") for i in range(5)])


def test_heldout_task_pools_positives_negatives_and_distractors() -> None:
    held = [
        Pair("q1", "p1", ("n1",), "d1"),
        Pair("q1", "p2", (), "d2"),
        Pair("q2", "p3", ("n1",), "d3"),
    ]
    task = HeldOut.build(held, distractors=["x1", "x2", "p1", "x3"], pool=6)
    assert len(task.queries) == 2
    assert sorted(task.corpus.values()) == sorted(["p1", "p2", "p3", "n1", *task_extra(task)])
    assert len(task.corpus) == 6
    relevant = {task.queries[q]: {task.corpus[d] for d in ds} for q, ds in task.relevant.items()}
    assert relevant == {"q1": {"p1", "p2"}, "q2": {"p3"}}


def task_extra(task: HeldOut) -> list[str]:
    return [t for t in task.corpus.values() if t.startswith("x")]


@pytest.mark.parametrize("pool", [6, 10_000])
def test_the_heldout_pool_bounds_the_passages_its_queries_are_ranked_among(pool: int) -> None:
    from ragkit.training.pipeline import prepare

    pairs = [Pair(f"q{i}", f"p{i}", (f"n{i}",), f"d{i}") for i in range(10)]
    train, held, task, corpus = prepare(
        pairs, kb=None, base_embedder=None, rules=NegativeRules(), eval_pairs=None,
        heldout_fraction=0.2, pool=pool, seed=0, mine=False, progress=None,
    )  # fmt: skip
    assert len(held) == 2
    assert len(train) == 8
    assert len(corpus) == 20  # 10 positives and 10 negatives
    assert {p.positive for p in held} <= set(task.corpus.values())  # answers always pooled
    # a pool at least as big as the corpus (the "whole kb" setting) takes all of it
    assert len(task.corpus) == min(pool, 20)


POOL = [
    "Glaciers carve deep valleys in mountains.",
    "Meltwater from the glacier feeds the rivers below.",
    "The piano has eighty eight keys.",
    "Espresso is forced through fine grounds.",
    "Volcanoes erupt molten lava.",
    "Ash clouds disrupt flights for many days.",
]


@pytest.mark.parametrize("retrieval", ["hybrid", "dense", "keyword"])
def test_the_pool_is_ranked_as_a_kb_with_that_retrieval_ranks_it(
    tmp_path: Path, retrieval: str
) -> None:
    query = "where does glacier meltwater go?"
    with RAG(tmp_path / "kb", store="memory", embedder=FakeEmbedder(), retrieval=retrieval) as kb:
        kb.add([Document(text=t, source=f"d{i}.txt") for i, t in enumerate(POOL)])
        expected = [(hit.chunk.text, hit.score) for hit in kb.retrieve(query, k=4)]
    ranked = pool_ranker(FakeEmbedder(), retrieval, k=4)(query, POOL)
    assert [text for text, _ in ranked] == [text for text, _ in expected]
    assert [score for _, score in ranked] == pytest.approx([score for _, score in expected])
    if retrieval == "keyword":
        assert ranked[0][0] == POOL[1]  # the only passage holding both query words


def test_an_unknown_first_stage_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="retrieval"):
        pool_ranker(FakeEmbedder(), "fuzzy")


# -- promote ---------------------------------------------------------------------------


def fake_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_promotion_takes_the_trained_model_only_when_it_wins(tmp_path: Path) -> None:
    trained = fake_model(tmp_path / "trained", b"new weights")
    saved: list[Path] = []

    def save_base(folder: Path) -> None:
        saved.append(folder)
        (folder / "model.safetensors").write_bytes(b"base weights")

    out = tmp_path / "out"
    lost = promote(
        kind="embedder", out=out, base="base", base_id="base-id", base_score=0.6,
        trained=trained, trained_score=0.58, save_base=save_base,
    )  # fmt: skip
    assert not lost.promoted
    assert "does not beat the base" in lost.reason
    assert (out / "model.safetensors").read_bytes() == b"base weights"
    assert model_id_of(out) == "base-id"
    assert json.loads((out / REPORT_FILE).read_text())["promoted"] is False

    won = promote(
        kind="embedder", out=out, base="base", base_id="base-id", base_score=0.6,
        trained=trained, trained_score=0.65, save_base=save_base,
    )  # fmt: skip
    assert won.promoted
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert won.model_id == model_id_of(out)
    assert won.model_id is not None
    assert won.model_id.startswith("ragkit-finetuned/base-")

    # a gain below min_gain is not enough; a reranker without a trained base gets no model
    out2 = tmp_path / "rr"
    report = promote(
        kind="reranker", out=out2, base="b", base_id="b", base_score=0.6,
        trained=trained, trained_score=0.605, min_gain=0.01,
    )  # fmt: skip
    assert not report.promoted
    assert report.model_id is None
    assert sorted(p.name for p in out2.iterdir()) == [REPORT_FILE]
    assert not (out2 / MODEL_FILE).exists()


def test_the_gain_bound_separates_a_steady_gain_from_luck() -> None:
    base = [0.5] * 40
    steady = [0.55] * 40  # every query gains 0.05
    assert gain_lower_bound(base, steady, 0.95) == pytest.approx(0.05)
    # the same mean gain from two lucky queries out of 40 (one of them lost)
    lucky = [0.5] * 37 + [1.0, 1.0, 0.0]
    assert sum(lucky) / 40 - 0.5 > 0
    assert gain_lower_bound(base, lucky, 0.95) < 0 < gain_lower_bound(base, lucky, 0.5)
    # repeatable, and the bound rises as the confidence asked for falls
    assert gain_lower_bound(base, lucky, 0.9) == gain_lower_bound(base, lucky, 0.9)
    assert gain_lower_bound(base, lucky, 0.99) <= gain_lower_bound(base, lucky, 0.9)
    with pytest.raises(ConfigurationError, match="pair up"):
        gain_lower_bound(base, steady[:-1], 0.95)
    with pytest.raises(ConfigurationError, match="confidence"):
        gain_lower_bound(base, steady, 1.0)


def test_a_held_out_gain_that_could_be_luck_keeps_the_base(tmp_path: Path) -> None:
    trained = fake_model(tmp_path / "trained", b"new weights")

    def save_base(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"base weights")

    base = [0.5] * 40
    lucky = [0.5] * 38 + [1.0, 1.0]  # mean +0.025, from 2 queries of 40
    out = tmp_path / "out"
    report = promote(
        kind="embedder", out=out, base="base", base_id="base-id", base_score=0.5,
        trained=trained, trained_score=0.525, per_query=(base, lucky), confidence=0.95,
        save_base=save_base,
    )  # fmt: skip
    assert not report.promoted
    assert "could be luck" in report.reason
    assert report.gain_lower is not None
    assert report.gain_lower <= 0
    assert (out / "model.safetensors").read_bytes() == b"base weights"
    assert json.loads((out / REPORT_FILE).read_text())["confidence"] == 0.95

    steady = [0.525] * 40  # the same mean gain on every query
    report = promote(
        kind="embedder", out=out, base="base", base_id="base-id", base_score=0.5,
        trained=trained, trained_score=0.525, per_query=(base, steady), confidence=0.95,
        save_base=save_base,
    )  # fmt: skip
    assert report.promoted
    assert (out / "model.safetensors").read_bytes() == b"new weights"
    assert "lower bound +0.0250 over 40 queries" in report.reason
    with pytest.raises(ConfigurationError, match="per-query"):
        promote(
            kind="embedder", out=out, base="base", base_id="base-id", base_score=0.5,
            trained=trained, trained_score=0.525, confidence=0.95, save_base=save_base,
        )  # fmt: skip


@pytest.mark.parametrize("confidence", [1.0, -0.1])
def test_a_bad_confidence_is_refused_before_any_training(tmp_path: Path, confidence: float) -> None:
    from ragkit.training.pipeline import finetune_embedder, finetune_reranker

    for run in (finetune_embedder, finetune_reranker):
        with pytest.raises(ConfigurationError, match="confidence"):
            run(tmp_path / "out", pairs=[Pair("q", "p", (), "d")], confidence=confidence)
    assert not (tmp_path / "out").exists()


def test_reranker_per_query_scores_the_first_stage_order_and_the_reranked_one() -> None:
    samples = [
        {"query": "a", "positive": ["p"], "documents": ["p", "x", "y"], "scores": [3, 2, 1]},
        {"query": "b", "positive": ["p"], "documents": ["x", "y", "p"], "scores": [3, 2, 1]},
        # q was missed by the first stage
        {"query": "c", "positive": ["p", "q"], "documents": ["x", "p"], "scores": [2, 1]},
    ]
    first = HeldOut.reranker_per_query(samples)
    assert first == pytest.approx([1.0, 0.5, (1 / np.log2(3)) / (1 + 1 / np.log2(3))])
    reverse = [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0]]  # prefers what came last
    reranked = HeldOut.reranker_per_query(samples, reverse)
    assert reranked == pytest.approx([0.5, 1.0, 1 / (1 + 1 / np.log2(3))])


def test_the_mix_weight_is_chosen_where_reranker_and_first_stage_together_do_best() -> None:
    samples = [  # the first stage is right here and the reranker wrong...
        {"query": "a", "positive": ["p"], "documents": ["p", "x", "y"], "scores": [3, 2, 1]},
        # ... and here the first stage barely misses while the reranker is sure
        {"query": "b", "positive": ["p"], "documents": ["x", "p", "y"], "scores": [3, 2.9, 0]},
    ]
    predictions = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.5]]
    alone = HeldOut.reranker_per_query(samples, predictions, 1.0)
    assert alone[0] == pytest.approx(0.5)
    assert HeldOut.reranker_per_query(samples)[1] < 1.0
    weight, per_query = HeldOut.best_weight(samples, predictions)
    assert per_query == pytest.approx([1.0, 1.0])
    assert weight == 0.5  # the largest weight at which both come first


def test_output_folder_of_the_user_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not empty"):
        check_output(tmp_path)
    assert (tmp_path / "notes.txt").exists()


# -- using the result ------------------------------------------------------------------


class OtherEmbedder(FakeEmbedder):
    """Another model: same dimension, different vectors and id."""

    @property
    def model_id(self) -> str:
        return "fake-other"

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        return super().embed_documents([t[::-1] for t in texts])

    def embed_query(self, text):  # type: ignore[no-untyped-def]
        return super().embed_query(text[::-1])


def test_reembed_rewrites_the_vectors_and_the_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    with RAG(folder, store="faiss", embedder=FakeEmbedder()) as rag:
        rag.add([Document(text=text, source=name) for name, text in TOPICS.items()])
        before = rag.retrieve("magma crust", 1)[0].chunk.document_id
        report = rag.reembed(OtherEmbedder())
        assert report["chunks"] == 4
        assert report["model_id"] == "fake-other"
        assert rag.embedder.model_id == "fake-other"
        assert rag.retrieve("magma crust", 1)[0].chunk.document_id == before
        again = rag.add([Document(text=text, source=name) for name, text in TOPICS.items()])
        assert len(again.unchanged) == 4  # the record follows the new embedder
    manifest = json.loads((folder / "ragkit.json").read_text())
    assert manifest["embedder_model"] == "fake-other"
    assert manifest["reembedding"] == ""
    with pytest.raises(EmbedderMismatchError):
        RAG(folder, embedder=FakeEmbedder())
    with RAG(folder, embedder=OtherEmbedder()) as rag:
        vectors = rag.embedder.embed_documents([TOPICS["piano"]])
        assert np.allclose(vectors, OtherEmbedder().embed_documents([TOPICS["piano"]]))


def test_an_interrupted_reembed_is_refused_until_finished(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    with RAG(folder, store="faiss", embedder=FakeEmbedder()) as rag:
        rag.add([Document(text=text, source=name) for name, text in TOPICS.items()])
    manifest = json.loads((folder / "ragkit.json").read_text())
    manifest["reembedding"] = "fake-other"  # what a crash in the middle leaves
    (folder / "ragkit.json").write_text(json.dumps(manifest))
    with pytest.raises(EmbedderMismatchError, match="interrupted"):
        RAG(folder, embedder=FakeEmbedder())
    with RAG(folder, embedder=OtherEmbedder()) as rag:  # only the new model, to finish
        rag.reembed(OtherEmbedder())
    with RAG(folder, embedder=OtherEmbedder()) as rag:
        assert rag.stats()["chunks"] == 4


def test_query_adapter_moves_queries_only_and_keeps_the_model_id(rag: RAG) -> None:
    base = FakeEmbedder()
    chunks = kb_chunks(rag)
    # queries in other words than their passages: the adapter must learn the mapping
    pairs = [
        Pair(f"{name} question", c.text, document_id=c.document_id)
        for name, c in zip(["alpha", "beta", "gamma", "delta"], chunks, strict=True)
    ]
    adapter = train_query_adapter(
        pairs, base, epochs=60, batch_size=4, learning_rate=1e-2, identity_weight=0.0
    )
    adapted = AdaptedEmbedder(base, adapter)
    assert adapted.model_id == base.model_id
    assert np.array_equal(adapted.embed_documents(["x y"]), base.embed_documents(["x y"]))
    docs = base.embed_documents([p.positive for p in pairs])
    hits = [int(np.argmax(docs @ adapted.embed_query(p.query))) for p in pairs]
    assert hits == [0, 1, 2, 3]
    path = rag.path / "adapter.npz"  # type: ignore[operator]
    adapter.save(path)
    assert np.array_equal(QueryAdapter.load(path).weight, adapter.weight)
    with pytest.raises(ConfigurationError, match="trained for"):
        AdaptedEmbedder(OtherEmbedder(), adapter)


class PrefixedFake(PrefixedEncoder):
    """A model embedder in shape: query prefix, one _encode for a list of texts."""

    query_prefix = "query: "
    document_prefix = ""

    def __init__(self) -> None:
        self.fake = FakeEmbedder()
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "prefixed-fake"

    @property
    def dimension(self) -> int:
        return self.fake.dimension

    def _encode(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        self.calls += 1
        return self.fake.embed_documents(texts)


def test_queries_are_embedded_in_batches_with_the_query_prefix(tmp_path: Path) -> None:
    model = PrefixedFake()
    queries = [f"question {i} about lava" for i in range(300)]
    one_by_one = np.vstack([model.embed_query(q) for q in queries])
    model.calls = 0
    cached = CachedEmbedder(model, tmp_path / "cache.sqlite")
    batched = embed_queries(cached, queries)
    assert model.calls == 2  # 256 + 44, through the cache wrapper
    assert np.allclose(batched, one_by_one, atol=1e-6)
    # a wrapper that changes queries is called as it is
    adapter = QueryAdapter(np.eye(model.dimension, dtype=np.float32)[::-1].copy(), "prefixed-fake")
    adapted = AdaptedEmbedder(model, adapter)
    assert np.allclose(
        embed_queries(adapted, queries[:3]),
        [adapted.embed_query(q) for q in queries[:3]],
        atol=1e-6,
    )


# -- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "native", "bf16"),
    [
        ("bfloat16", False, True),
        ("float32", True, False),
        ("auto", True, True),
        ("auto", False, False),
    ],
)
def test_training_precision_reaches_the_trainer(
    precision: str, native: bool, bf16: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ragkit.embeddings.sentence_transformers as st_module

    monkeypatch.setattr(st_module, "native_bf16", lambda: native)
    config = TrainConfig(precision=precision)
    args = _arguments(dict, config, tmp_path, "eval_ndcg", rows=64, extra={})
    assert args["bf16"] is bf16


def test_an_unknown_training_precision_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="float16"):
        TrainConfig(precision="float16")
