"""Step 3, export: a peft LoRA adapter as llama.cpp's LoRA adapter GGUF.

llama.cpp applies LoRA adapters when it loads a model (``LlamaCppGenerator(lora=...)``).
Its adapter file is a GGUF with ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha``, and for every adapted weight two tensors named after the
model's GGUF tensor: ``blk.N.attn_q.weight.lora_a`` (rank x in) and ``.lora_b``
(out x rank), the shapes of peft's ``lora_A`` / ``lora_B``. Written here with the
``gguf`` package (what llama.cpp's ``convert_lora_to_gguf.py`` writes, for the
architectures below).

Llama GGUFs store the query and key projections with their rows permuted for llama.cpp's
rotary layout (``convert_hf_to_gguf.py``, ``LlamaModel.permute``; transformers undoes it
when it reads a GGUF), so ``lora_b`` of those two is permuted the same way:
``(P B) A = P (B A)``.

Example:
    >>> write_gguf_adapter("out/", "out/adapter.gguf", base="SmolLM2.gguf")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit.errors import ConfigurationError

__all__ = ["GGUF_ADAPTER", "base_shape", "write_gguf_adapter"]

#: The file name of the converted adapter inside an adapter folder.
GGUF_ADAPTER = "adapter.gguf"

#: Architectures whose GGUF keeps peft's layout, and whether q/k rows are permuted.
_PERMUTES_QK = {"llama": True, "qwen2": False, "qwen3": False}


def base_shape(base_gguf: str | Path) -> dict[str, Any]:
    """Architecture, heads and blocks of a GGUF model (what the conversion needs)."""
    gguf = require("gguf", extra="train", purpose="writing a LoRA adapter GGUF")
    reader = gguf.GGUFReader(str(base_gguf))

    def field(key: str) -> Any:
        value = reader.fields.get(key)
        if value is None:
            raise ConfigurationError(f"{base_gguf}: no {key} in the GGUF metadata")
        return value.contents()

    arch = str(field("general.architecture"))
    return {
        "architecture": arch,
        "n_head": int(field(f"{arch}.attention.head_count")),
        "n_head_kv": int(field(f"{arch}.attention.head_count_kv")),
        "n_blocks": int(field(f"{arch}.block_count")),
    }


def _permute(weights: Any, n_head: int) -> Any:
    """convert_hf_to_gguf's LlamaModel.permute on the rows (output dim) of ``weights``."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf_adapter(
    adapter_dir: str | Path,
    out: str | Path,
    *,
    base: str | Path | None = None,
    shape: dict[str, Any] | None = None,
) -> Path:
    """Convert the peft adapter in ``adapter_dir`` to llama.cpp's LoRA GGUF at ``out``.

    Args:
        adapter_dir: a folder with ``adapter_config.json`` and
            ``adapter_model.safetensors`` (``train_lora``'s output).
        out: the GGUF file to write.
        base: the base model's GGUF (read for its architecture and heads), or
        shape: those values directly (see :func:`base_shape`).

    Raises:
        ConfigurationError: an adapter llama.cpp cannot apply as is (DoRA, rsLoRA,
            adapted embeddings), or an architecture not handled here.
    """
    gguf = require("gguf", extra="train", purpose="writing a LoRA adapter GGUF")
    safetensors_numpy = require(
        "safetensors.numpy", extra="train", purpose="reading a LoRA adapter"
    )
    import numpy as np

    folder = Path(adapter_dir)
    if shape is None:
        if base is None:
            raise ConfigurationError("write_gguf_adapter needs base= (a GGUF) or shape=")
        shape = base_shape(base)
    arch = str(shape["architecture"])
    if arch not in _PERMUTES_QK:
        raise ConfigurationError(
            f"LoRA GGUF export supports {sorted(_PERMUTES_QK)} models, not {arch!r}; serve "
            "the adapter with TransformersGenerator(lora=...) instead"
        )
    config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    if config.get("use_dora") or config.get("use_rslora"):
        raise ConfigurationError("llama.cpp applies plain LoRA only (not DoRA or rsLoRA)")
    tensors = safetensors_numpy.load_file(str(folder / "adapter_model.safetensors"))
    names = gguf.get_tensor_name_map(
        {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], int(shape["n_blocks"])
    )
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    written = 0
    for key in sorted(tensors):
        if ".lora_A." not in key:
            if ".lora_B." not in key:
                raise ConfigurationError(f"{folder}: unexpected adapter tensor {key!r}")
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        target = names.get_name(module)
        if target is None or target in ("token_embd", "output"):
            raise ConfigurationError(f"{folder}: no llama.cpp tensor for {module!r}")
        a = np.ascontiguousarray(tensors[key], dtype=np.float32)
        b = np.asarray(tensors[key.replace(".lora_A.", ".lora_B.")], dtype=np.float32)
        if _PERMUTES_QK[arch] and module.endswith("q_proj"):
            b = _permute(b, int(shape["n_head"]))
        elif _PERMUTES_QK[arch] and module.endswith("k_proj"):
            b = _permute(b, int(shape["n_head_kv"]))
        writer.add_tensor(f"{target}.weight.lora_a", a)
        writer.add_tensor(f"{target}.weight.lora_b", np.ascontiguousarray(b))
        written += 1
    if not written:
        raise ConfigurationError(f"{folder}: the adapter holds no LoRA tensors")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
