"""OnnxEmbedder without a real model: a fake session and a word-level tokenizer built here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.embeddings import DEFAULT_MODEL, ONNX_INT8_MODEL_ID, OnnxEmbedder
from ragkit.embeddings.onnx import _Runtime
from ragkit.errors import ConfigurationError, MissingDependencyError

tokenizers = pytest.importorskip("tokenizers")

WORDS = ["[PAD]", "[UNK]", "a", "b", "c", "d", "e"]


def word_tokenizer() -> Any:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    # Like MiniLM's tokenizer.json: padding pinned to a fixed length the embedder must undo.
    tok.enable_padding(length=16, pad_id=0, pad_token="[PAD]")
    return tok


class _Arg:
    def __init__(self, name: str, shape: list[Any]) -> None:
        self.name = name
        self.shape = shape


class FakeSession:
    """Token t's hidden state is (id, 1, 0); padding positions get (100, 100, 100),
    which would show in any vector that pooled over them."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def get_inputs(self) -> list[_Arg]:
        return [_Arg(n, ["b", "s"]) for n in ("input_ids", "attention_mask", "token_type_ids")]

    def get_outputs(self) -> list[_Arg]:
        return [_Arg("last_hidden_state", ["b", "s", 3])]

    def run(self, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        assert names == ["last_hidden_state"]
        assert feeds["token_type_ids"].shape == ids.shape
        self.widths.append(ids.shape[1])
        hidden = np.stack([ids, np.ones_like(ids), np.zeros_like(ids)], axis=-1).astype(float)
        hidden[mask == 0] = 100.0
        return [hidden]


def fake_embedder(tmp_path: Path, *, batch_size: int = 2, max_length: int = 8) -> Any:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not loaded")
    (tmp_path / "tokenizer.json").write_text("{}")
    embedder = OnnxEmbedder(model, batch_size=batch_size, max_length=max_length)
    session = FakeSession()
    embedder._runtime = _Runtime(session, word_tokenizer(), max_length)
    return embedder, session


def unit(v: list[float]) -> Any:
    arr = np.asarray(v, dtype=np.float32)
    return arr / np.linalg.norm(arr)


def test_mean_pooling_ignores_padding_and_vectors_are_unit_length(tmp_path: Path) -> None:
    embedder, _ = fake_embedder(tmp_path)
    out = embedder.embed_documents(["a b", "e"])  # ids [2, 3] and [6]
    np.testing.assert_allclose(out[0], unit([2.5, 1, 0]), rtol=1e-6)
    np.testing.assert_allclose(out[1], unit([6, 1, 0]), rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_batches_follow_length_and_vectors_come_back_in_input_order(tmp_path: Path) -> None:
    embedder, session = fake_embedder(tmp_path)
    texts = ["a b c d", "e", "a b c", "b", "c d"]
    out = embedder.embed_documents(texts)
    # Sorted lengths 1, 1, 2, 3, 4 in batches of two: each padded to its own longest.
    assert session.widths == [1, 3, 4]
    for text, vector in zip(texts, out, strict=True):
        np.testing.assert_allclose(vector, embedder.embed_documents([text])[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], unit([6, 1, 0]), rtol=1e-6)


def test_texts_are_truncated_at_the_model_window(tmp_path: Path) -> None:
    embedder, session = fake_embedder(tmp_path, max_length=3)
    out = embedder.embed_documents(["a b c d e", "a b c"])
    assert session.widths == [3]
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)


def test_prefixes_and_empty_input(tmp_path: Path) -> None:
    embedder, _ = fake_embedder(tmp_path)
    embedder.query_prefix = "e "
    np.testing.assert_allclose(embedder.embed_query("a"), unit([4, 1, 0]), rtol=1e-6)
    assert embedder.embed_documents([]).shape == (0, 3)
    assert embedder.dimension == 3


def test_missing_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    (tmp_path / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    embedder = OnnxEmbedder(model, threads=1)
    with pytest.raises(MissingDependencyError, match=r'pip install "ragkit\[onnx\]"'):
        embedder.warm_up()


def test_bad_settings_and_missing_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        OnnxEmbedder(tmp_path / "absent.onnx")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(ConfigurationError, match=r"tokenizer\.json"):
        OnnxEmbedder(model)  # no tokenizer beside it
    with pytest.raises(ConfigurationError, match="batch_size"):
        OnnxEmbedder(model, tmp_path, batch_size=0)
    with pytest.raises(ConfigurationError, match="threads"):
        OnnxEmbedder(model, tmp_path, threads=0)


def test_bundled_model_id_differs_from_the_fp32_model() -> None:
    # Vectors differ slightly: a kb must never mix int8 and fp32 vectors.
    assert ONNX_INT8_MODEL_ID != DEFAULT_MODEL
