"""merge_gguf on a tiny Llama GGUF written here: every adapted weight becomes
base + alpha / r * B A in llama.cpp's row layout, everything else is copied as it was.

The model that llama.cpp really runs merged is checked against its own LoRA path in
tests/integration/test_generator_finetune_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragkit.cli.main import main
from ragkit.errors import ConfigurationError
from ragkit.training.generator.gguf_merge import merge_gguf

gguf = pytest.importorskip("gguf")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

N_HEAD, N_HEAD_KV, HIDDEN, HEAD_DIM, FFN = 2, 1, 32, 32, 64
TOKENS = ["<s>", "</s>", "a", "b"]
PEFT = "base_model.model.model.layers.0."


def _write_base(path: Path) -> dict[str, np.ndarray]:
    """A one-block llama GGUF: q and k quantized Q4_1, ffn_down F32, an F32 embedding."""
    rng = np.random.default_rng(1)
    weights = {
        "token_embd.weight": rng.normal(0, 1, (len(TOKENS), HIDDEN)).astype(np.float32),
        "blk.0.attn_q.weight": rng.normal(0, 1, (N_HEAD * HEAD_DIM, HIDDEN)).astype(np.float32),
        "blk.0.attn_k.weight": rng.normal(0, 1, (N_HEAD_KV * HEAD_DIM, HIDDEN)).astype(np.float32),
        "blk.0.ffn_down.weight": rng.normal(0, 1, (HIDDEN, FFN)).astype(np.float32),
    }
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_embedding_length(HIDDEN)
    writer.add_token_list(TOKENS)
    writer.add_string("general.name", "tiny")
    for name, value in weights.items():
        if name.startswith("blk.0.attn_"):
            q41 = gguf.GGMLQuantizationType.Q4_1
            writer.add_tensor(name, gguf.quantize(value, q41), raw_dtype=q41)
        else:
            writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


def _write_adapter(folder: Path, *, layer: int = 0) -> dict[str, np.ndarray]:
    """A peft LoRA (r 4, alpha 8: scale 2) on q_proj, k_proj and down_proj."""
    rng = np.random.default_rng(2)
    prefix = f"base_model.model.model.layers.{layer}."
    shapes = {
        "self_attn.q_proj": (N_HEAD * HEAD_DIM, HIDDEN),
        "self_attn.k_proj": (N_HEAD_KV * HEAD_DIM, HIDDEN),
        "mlp.down_proj": (HIDDEN, FFN),
    }
    tensors = {}
    for module, (rows, cols) in shapes.items():
        tensors[f"{prefix}{module}.lora_A.weight"] = rng.normal(0, 1, (4, cols)).astype("f4")
        tensors[f"{prefix}{module}.lora_B.weight"] = rng.normal(0, 1, (rows, 4)).astype("f4")
    folder.mkdir(parents=True, exist_ok=True)
    safetensors_numpy.save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"lora_alpha": 8, "r": 4}))
    return tensors


def _llama_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face rows in llama.cpp's rotary order, one row at a time: within a head,
    GGUF row 2i + j holds HF row j * half + i (the halves interleaved)."""
    out = np.empty_like(rows)
    dim = rows.shape[0] // n_head
    half = dim // 2
    for head in range(n_head):
        for i in range(half):
            for j in range(2):
                out[head * dim + 2 * i + j] = rows[head * dim + j * half + i]
    return out


def _tensors(path: Path) -> dict[str, object]:
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {
        name: gguf.dequantize(t.data, t.tensor_type).reshape(  # type: ignore[attr-defined]
            [int(n) for n in reversed(t.shape)]  # type: ignore[attr-defined]
        )
        for name, t in _tensors(path).items()
    }


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    base = tmp_path / "base.gguf"
    _write_base(base)
    adapter = tmp_path / "adapter"
    return base, adapter, _write_adapter(adapter)


def _expected_delta(tensors: dict[str, np.ndarray], module: str, n_head: int | None) -> np.ndarray:
    b = tensors[f"{PEFT}{module}.lora_B.weight"]
    a = tensors[f"{PEFT}{module}.lora_A.weight"]
    delta = 8 / 4 * (b @ a)
    return delta if n_head is None else _llama_rows(delta, n_head)


def test_f32_merge_is_base_plus_scaled_delta_in_llama_row_order(tiny, tmp_path: Path) -> None:
    base, adapter, lora = tiny
    out = merge_gguf(adapter, tmp_path / "merged.gguf", base=base, weight_type="f32")
    before, after = _weights(base), _weights(out)
    q = _expected_delta(lora, "self_attn.q_proj", N_HEAD)
    k = _expected_delta(lora, "self_attn.k_proj", N_HEAD_KV)
    down = _expected_delta(lora, "mlp.down_proj", None)
    np.testing.assert_allclose(
        after["blk.0.attn_q.weight"], before["blk.0.attn_q.weight"] + q, atol=1e-4
    )
    np.testing.assert_allclose(
        after["blk.0.attn_k.weight"], before["blk.0.attn_k.weight"] + k, atol=1e-4
    )
    np.testing.assert_allclose(
        after["blk.0.ffn_down.weight"], before["blk.0.ffn_down.weight"] + down, atol=1e-4
    )
    # the rows really moved: HF order would not match
    unpermuted = before["blk.0.attn_q.weight"] + _expected_delta(lora, "self_attn.q_proj", None)
    assert not np.allclose(after["blk.0.attn_q.weight"], unpermuted, atol=1e-2)


def test_untouched_tensors_and_metadata_are_copied_as_they_were(tiny, tmp_path: Path) -> None:
    base, adapter, _lora = tiny
    out = merge_gguf(adapter, tmp_path / "merged.gguf", base=base)
    old, new = _tensors(base), _tensors(out)
    assert list(old) == list(new)  # same tensors, same order
    embd_old, embd_new = old["token_embd.weight"], new["token_embd.weight"]
    assert embd_new.tensor_type == embd_old.tensor_type  # type: ignore[attr-defined]
    assert np.array_equal(embd_new.data, embd_old.data)  # type: ignore[attr-defined]
    fields_old = gguf.GGUFReader(str(base)).fields
    fields_new = gguf.GGUFReader(str(out)).fields
    for key in ("tokenizer.ggml.tokens", "llama.attention.head_count", "general.name"):
        assert fields_new[key].contents() == fields_old[key].contents()
    assert fields_new["general.architecture"].contents() == "llama"


def test_auto_stores_a_4_bit_weight_as_q8_0_and_keeps_a_float_one(tiny, tmp_path: Path) -> None:
    base, adapter, lora = tiny
    out = merge_gguf(adapter, tmp_path / "merged.gguf", base=base)  # weight_type="auto"
    types = {name: t.tensor_type.name for name, t in _tensors(out).items()}  # type: ignore[attr-defined]
    assert types["blk.0.attn_q.weight"] == "Q8_0"  # was Q4_1
    assert types["blk.0.ffn_down.weight"] == "F32"  # was F32
    before, after = _weights(base), _weights(out)
    want = before["blk.0.attn_q.weight"] + _expected_delta(lora, "self_attn.q_proj", N_HEAD)
    step = np.abs(want).max() / 127  # Q8_0: 8-bit blocks scaled by their largest value
    assert np.abs(after["blk.0.attn_q.weight"] - want).max() <= step


def test_same_keeps_the_base_type(tiny, tmp_path: Path) -> None:
    base, adapter, _lora = tiny
    out = merge_gguf(adapter, tmp_path / "merged.gguf", base=base, weight_type="same")
    types = {name: t.tensor_type.name for name, t in _tensors(out).items()}  # type: ignore[attr-defined]
    assert types["blk.0.attn_q.weight"] == "Q4_1"
    assert out.stat().st_size == base.stat().st_size


def test_scale_zero_leaves_the_weights_of_the_base(tiny, tmp_path: Path) -> None:
    base, adapter, _lora = tiny
    out = merge_gguf(adapter, tmp_path / "merged.gguf", base=base, weight_type="f32", scale=0.0)
    before, after = _weights(base), _weights(out)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_the_base_comes_from_the_adapters_report(tiny, tmp_path: Path) -> None:
    base, adapter, _lora = tiny
    (adapter / "finetune-report.json").write_text(json.dumps({"base": str(base)}))
    out = merge_gguf(adapter, tmp_path / "merged.gguf", weight_type="f32")
    assert _weights(out)["blk.0.attn_q.weight"].shape == (N_HEAD * HEAD_DIM, HIDDEN)


def test_refusals_name_the_problem(tiny, tmp_path: Path) -> None:
    base, adapter, _lora = tiny
    with pytest.raises(ConfigurationError, match="no base GGUF"):
        merge_gguf(adapter, tmp_path / "merged.gguf")  # no report, no base=
    with pytest.raises(ConfigurationError, match="no such base model file"):
        merge_gguf(adapter, tmp_path / "merged.gguf", base=tmp_path / "missing.gguf")
    with pytest.raises(ConfigurationError, match="not a GGUF file"):
        merge_gguf(adapter, tmp_path / "merged.gguf", base=adapter / "adapter_config.json")
    with pytest.raises(ConfigurationError, match="weight_type"):
        merge_gguf(adapter, tmp_path / "merged.gguf", base=base, weight_type="q2_k")
    with pytest.raises(ConfigurationError, match="overwrite the base"):
        merge_gguf(adapter, base, base=base)
    other = tmp_path / "other"
    _write_adapter(other, layer=0)
    (other / "adapter_config.json").write_text(json.dumps({"lora_alpha": 8, "use_dora": True}))
    with pytest.raises(ConfigurationError, match="DoRA"):
        merge_gguf(other, tmp_path / "merged.gguf", base=base)
    assert not (tmp_path / "merged.gguf").exists()


def test_an_adapter_for_another_model_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.gguf"
    _write_base(base)
    adapter = tmp_path / "adapter"
    _write_adapter(adapter, layer=0)
    bigger = tmp_path / "bigger"
    tensors = safetensors_numpy.load_file(str(adapter / "adapter_model.safetensors"))
    bigger.mkdir()
    moved = dict(tensors)  # layer 0 and a layer 5 the one-block base does not have
    moved.update(
        {key.replace("layers.0.", "layers.5.", 1): value for key, value in tensors.items()}
    )
    safetensors_numpy.save_file(moved, str(bigger / "adapter_model.safetensors"))
    (bigger / "adapter_config.json").write_text(json.dumps({"lora_alpha": 8, "r": 4}))
    with pytest.raises(ConfigurationError, match="trained on another model"):
        merge_gguf(bigger, tmp_path / "merged.gguf", base=base)


def test_cli_merge_writes_merged_gguf_in_the_adapter_folder(
    tiny, capsys: pytest.CaptureFixture[str]
) -> None:
    base, adapter, _lora = tiny
    assert main(["finetune", "merge", str(adapter), "--base", str(base), "--type", "f32"]) == 0
    assert (adapter / "merged.gguf").is_file()
    assert "ragkit ask --kb KB --llm" in capsys.readouterr().out


def test_an_adapter_of_other_shapes_is_refused_before_writing(tiny, tmp_path: Path) -> None:
    base, adapter, lora = tiny
    bad = dict(lora)
    bad[f"{PEFT}mlp.down_proj.lora_A.weight"] = np.ones((4, FFN + 32), dtype=np.float32)
    safetensors_numpy.save_file(bad, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(ConfigurationError, match=r"blk.0.ffn_down.weight as 32 x 96"):
        merge_gguf(adapter, tmp_path / "merged.gguf", base=base)
    assert not (tmp_path / "merged.gguf").exists()


def test_a_merge_that_fails_while_writing_leaves_no_file_behind(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up halfway: neither the output nor a partial file is left,
    so nothing can later load half a model; an older output stays as it was."""
    base, adapter, _lora = tiny
    out = tmp_path / "sub" / "merged.gguf"
    merge_gguf(adapter, out, base=base)
    before = out.read_bytes()
    calls = []

    def quantize_then_fail(data: np.ndarray, qtype: object) -> np.ndarray:
        calls.append(qtype)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_quantize(data, qtype)

    real_quantize = gguf.quantize
    monkeypatch.setattr(gguf, "quantize", quantize_then_fail)
    with pytest.raises(OSError, match="No space left"):
        merge_gguf(adapter, out, base=base, weight_type="f16")
    assert [p.name for p in out.parent.iterdir()] == ["merged.gguf"]
    assert out.read_bytes() == before
