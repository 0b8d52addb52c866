"""ragkit.training with real trainers: a tiny BERT built from a config (no download) for a
few steps of each trainer, and the bundled MiniLM for the promotion rule."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit import RAG
from ragkit.cli.main import main
from ragkit.embeddings import SentenceTransformerEmbedder, bundled_minilm_path
from ragkit.reranking import CrossEncoderReranker
from ragkit.training import Pair, TrainConfig, finetune_embedder, write_pairs
from ragkit.training.evaluate import HeldOut, pool_ranker
from ragkit.training.promote import REPORT_FILE
from ragkit.training.train import train_reranker
from ragkit.types import Chunk, Document, ScoredChunk

pytestmark = pytest.mark.integration

pytest.importorskip("datasets")

TOPICS = [
    ("volcano", "lava", "Volcanoes erupt molten lava and ash over the land."),
    ("glacier", "ice", "Glaciers are slow rivers of ice that carve valleys."),
    ("piano", "keys", "A piano has eighty eight keys struck by felt hammers."),
    ("coffee", "beans", "Coffee beans are roasted and ground before brewing."),
    ("whale", "ocean", "Whales are mammals that breathe air in the ocean."),
    ("rocket", "fuel", "Rockets burn fuel to lift satellites into orbit."),
    ("cheese", "milk", "Cheese is made by curdling milk with rennet."),
    ("chess", "board", "Chess is played on a board of sixty four squares."),
    ("honey", "bees", "Bees make honey from the nectar of flowers."),
    ("desert", "sand", "Deserts are dry places covered with sand dunes."),
    ("castle", "walls", "Castles had thick stone walls and a moat."),
    ("laser", "light", "A laser emits a narrow beam of coherent light."),
]


def good_pairs() -> list[Pair]:
    return [Pair(f"what about {word}?", text, document_id=name) for name, word, text in TOPICS]


def bad_pairs() -> list[Pair]:
    """Each query paired with another topic's passage."""
    pairs = good_pairs()
    return [
        Pair(p.query, pairs[(i + 5) % len(pairs)].positive, document_id=p.document_id)
        for i, p in enumerate(pairs)
    ]


def heldout_pairs() -> list[Pair]:
    return [Pair(f"tell me about {w}", t, document_id=n) for n, w, t in TOPICS]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy CI machine the
    threads' spinning made the steps 5x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT sentence-transformer (MiniLM's tokenizer, random weights)."""
    import torch
    from transformers import BertConfig, BertModel

    source = bundled_minilm_path()
    assert source is not None
    folder = tmp_path_factory.mktemp("tiny") / "model"
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def test_a_few_steps_give_a_folder_that_loads_and_embeds_differently(
    tiny: Path, tmp_path: Path
) -> None:
    pairs_file = tmp_path / "pairs.jsonl"
    write_pairs(good_pairs(), pairs_file)
    out = tmp_path / "model"
    # --min-gain -1 promotes whatever trains: this test is about the path, not the score
    code = main([
        "finetune", "embedder", "--out", str(out), "--pairs", str(pairs_file),
        "--base", str(tiny), "--epochs", "1", "--batch-size", "4", "--lr", "1e-3",
        "--heldout", "0.25", "--min-gain", "-1", "--precision", "bfloat16",
    ])  # fmt: skip
    assert code == 0
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["promoted"] is True
    assert report["seconds"]["steps"] >= 2
    assert report["settings"]["precision"] == "bfloat16"
    assert report["settings"]["bf16"] is True  # what the trainer ran, not only what was asked
    trained = SentenceTransformerEmbedder(out)
    assert trained.model_id.startswith("ragkit-finetuned/model-embedder-")
    base = SentenceTransformerEmbedder(tiny)
    text = ["Volcanoes erupt molten lava."]
    assert not np.allclose(trained.embed_documents(text), base.embed_documents(text), atol=1e-4)

    # ... and becomes a kb's embedder through `ragkit finetune use`
    kb = tmp_path / "kb"
    with RAG(kb, store="faiss", embedder=base) as rag:
        rag.add([Document(text=t, source=n) for n, _, t in TOPICS])
    assert main(["finetune", "use", "--kb", str(kb), str(out)]) == 0
    with RAG(kb) as rag:  # no embedder given: the recorded model folder is loaded
        assert rag.embedder.model_id == trained.model_id
        hits = rag.retrieve("lava", 3)
        assert hits
        assert np.allclose(
            rag.embedder.embed_documents(text), trained.embed_documents(text), atol=1e-5
        )


def test_reranker_trainer_runs_and_its_folder_loads(tiny: Path, tmp_path: Path) -> None:
    pairs = good_pairs()
    train, held = pairs[:9], pairs[9:]
    train = [
        Pair(p.query, p.positive, (pairs[(i + 1) % len(pairs)].positive,), p.document_id)
        for i, p in enumerate(train)
    ]
    task = HeldOut.build(held, distractors=[p.positive for p in train])
    samples = task.reranker_samples(
        pool_ranker(SentenceTransformerEmbedder(tiny), "dense", 5), depth=5
    )
    result = train_reranker(
        train, task, samples, base=tiny, work=tmp_path / "work",
        config=TrainConfig(
            epochs=1, batch_size=4, learning_rate=1e-3, negatives=1, precision="float32"
        ),
    )  # fmt: skip
    assert result.steps >= 2
    # the per-query figures the promotion resamples average to the evaluator's measures
    from ragkit.training.train import load_cross_encoder

    model = load_cross_encoder(result.path)
    scores = task.reranker_evaluator(samples)(model)
    first = task.reranker_per_query(samples)
    reranked = task.reranker_per_query(samples, task.reranker_predictions(samples, model))
    assert np.mean(first) == pytest.approx(scores[task.first_stage_key], abs=1e-6)
    assert np.mean(reranked) == pytest.approx(scores[task.reranker_key], abs=1e-6)
    reranker = CrossEncoderReranker(result.path)
    assert reranker.weight == 1.0  # nothing recorded: the reranker alone
    scores = reranker.score("what about lava?", [t for _, _, t in TOPICS[:3]])
    assert len(scores) == 3
    assert len(set(scores)) > 1

    # a weight recorded in the folder mixes the retriever's scores in; 0 keeps its order
    hits = [
        ScoredChunk(Chunk(f"c{i}", t, f"d{i}", "s", 0, len(t)), score=3.0 - i)
        for i, (_, _, t) in enumerate(TOPICS[:3])
    ]
    by_model = [h.chunk.id for h in reranker.rerank("what about lava?", hits, 3)]
    assert by_model == [hits[i].chunk.id for i in np.argsort(-np.asarray(scores), kind="stable")]
    (result.path / "ragkit_model.json").write_text('{"model_id": "m", "weight": 0.0}')
    kept = CrossEncoderReranker(result.path)
    assert kept.weight == 0.0
    assert [h.chunk.id for h in kept.rerank("what about lava?", hits, 3)] == ["c0", "c1", "c2"]
    assert CrossEncoderReranker(result.path, weight=1.0).weight == 1.0  # given wins


def test_a_bad_training_set_leaves_the_base_model_in_place(tmp_path: Path) -> None:
    """Queries paired with the wrong passages, a high learning rate: the trained
    model ranks the held-out documents worse, and the folder keeps the base."""
    shuffled, held = bad_pairs(), heldout_pairs()
    out = tmp_path / "model"
    report = finetune_embedder(
        out, pairs=shuffled * 2, eval_pairs=held,
        config=TrainConfig(epochs=1, batch_size=8, learning_rate=3e-4, negatives=0),
    )  # fmt: skip
    assert report.trained_score < report.base_score
    assert not report.promoted
    assert "base model is kept" in report.reason
    kept = SentenceTransformerEmbedder(out)
    assert kept.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    text = ["Volcanoes erupt molten lava."]
    base = SentenceTransformerEmbedder()
    assert np.allclose(kept.embed_documents(text), base.embed_documents(text), atol=1e-5)


def test_a_reranker_that_cannot_beat_the_kbs_own_order_is_not_written(
    tiny: Path, tmp_path: Path
) -> None:
    """The held-out judge is the order the kb's hybrid retrieval gives the pool: a
    reranker trained on wrong pairs cannot beat it, and no model is written."""
    from ragkit.testing import FakeEmbedder
    from ragkit.training import finetune_reranker

    shuffled, held = bad_pairs(), heldout_pairs()
    out = tmp_path / "reranker"
    with RAG(tmp_path / "kb", store="memory", embedder=FakeEmbedder()) as rag:
        rag.add([Document(text=t, source=n) for n, _, t in TOPICS])
        report = finetune_reranker(
            out, pairs=shuffled * 2, kb=rag, eval_pairs=held, base=tiny,
            config=TrainConfig(
                epochs=1, batch_size=8, learning_rate=3e-4, negatives=1, precision="float32"
            ),
        )  # fmt: skip
    assert report.settings["first_stage"] == "hybrid"
    assert report.settings["mining"] == "hybrid"  # negatives from the kb's own results
    assert report.settings["bf16"] is False  # precision="float32"
    assert report.base_score > 0.9  # BM25 finds "lava" in the lava passage
    # at its best mix weight the reranker at most ties the first stage's order
    assert report.trained_score <= report.base_score
    assert not report.promoted
    assert "does not beat the base" in report.reason
    assert report.model_id is None
    assert "keep retrieving without this reranker" in report.reason
    assert not (out / "model.safetensors").exists()
    assert (out / REPORT_FILE).exists()


def test_embedder_per_query_scores_average_to_the_evaluators_ndcg(tiny: Path) -> None:
    from sentence_transformers import SentenceTransformer

    held = heldout_pairs()
    task = HeldOut.build(held, distractors=["Trains run on rails.", "Owls hunt at night."])
    model = SentenceTransformer(str(tiny), device="cpu")
    per_query = task.embedder_per_query(model)
    assert len(per_query) == len(TOPICS)
    assert len(set(per_query)) > 1  # a random tiny model finds some and misses others
    assert np.mean(per_query) == pytest.approx(task.score_embedder(model), abs=1e-6)


def test_train_embedder_scores_the_model_it_keeps_per_query(tiny: Path, tmp_path: Path) -> None:
    """The per-query figures the promotion resamples come with the training result (no
    second encoding of the pool) and are the written model's own."""
    from sentence_transformers import SentenceTransformer

    from ragkit.training.train import train_embedder

    pairs = good_pairs()
    task = HeldOut.build(pairs[9:], distractors=[p.positive for p in pairs[:9]])
    result = train_embedder(
        pairs[:9], task, base=tiny, work=tmp_path / "work",
        config=TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, negatives=0,
                           precision="float32"),
    )  # fmt: skip
    assert len(result.per_query) == len(task.queries)
    assert result.score == pytest.approx(np.mean(result.per_query))
    written = SentenceTransformer(str(result.path), device="cpu")
    assert list(result.per_query) == pytest.approx(task.embedder_per_query(written), abs=1e-6)
    assert result.score == pytest.approx(task.score_embedder(written), abs=1e-6)


def test_the_fast_mode_from_the_cli_is_recorded_in_the_kb(tmp_path: Path, minilm: Any) -> None:
    from ragkit.embeddings.adapted import ADAPTER_FILE, AdaptedEmbedder
    from ragkit.errors import ConfigurationError

    kb = tmp_path / "kb"
    with RAG(kb, store="faiss", embedder=minilm) as rag:
        rag.add([Document(text=t, source=n) for n, _, t in TOPICS])
    pairs_file = tmp_path / "pairs.jsonl"
    write_pairs(good_pairs(), pairs_file)
    out = tmp_path / "adapter"
    # --min-gain -1 --confidence 0 promotes whatever is fitted: this test is the path
    code = main([
        "finetune", "adapter", "--kb", str(kb), "--out", str(out), "--pairs", str(pairs_file),
        "--heldout", "0.25", "--epochs", "40", "--min-gain", "-1", "--confidence", "0",
    ])  # fmt: skip
    assert code == 0
    assert json.loads((out / REPORT_FILE).read_text())["kind"] == "adapter"
    assert main(["finetune", "use", "--kb", str(kb), str(out)]) == 0
    query = "what about lava?"
    with RAG(kb) as rag:  # no embedder given: the bundled model, then the adapter
        assert isinstance(rag.embedder, AdaptedEmbedder)
        assert not np.allclose(rag.embedder.embed_query(query), minilm.embed_query(query))
        assert np.allclose(
            rag.embedder.embed_documents([query]), minilm.embed_documents([query]), atol=1e-5
        )
        assert rag.retrieve(query, 1)[0].chunk.source == "volcano"
    (out / ADAPTER_FILE).unlink()
    with pytest.raises(ConfigurationError, match="--no-adapter"):
        RAG(kb)
    assert main(["finetune", "use", "--kb", str(kb), "--no-adapter"]) == 0
    with RAG(kb) as rag:
        assert not isinstance(rag.embedder, AdaptedEmbedder)
