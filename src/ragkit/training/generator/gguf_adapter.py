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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit._files import replacing
from ragkit.errors import ConfigurationError

__all__ = ["GGUF_ADAPTER", "LoraTensors", "base_shape", "lora_deltas", "write_gguf_adapter"]

#: The file name of the converted adapter inside an adapter folder.
GGUF_ADAPTER = "adapter.gguf"

#: Architectures whose GGUF keeps peft's layout, and whether q/k rows are permuted.
_PERMUTES_QK = {"llama": True, "qwen2": False, "qwen3": False}


@dataclass(frozen=True, slots=True)
class LoraTensors:
    """One adapted weight of a GGUF model: ``weight += alpha / rank * b @ a``.

    Attributes:
        weight: the GGUF tensor it adapts (``blk.3.attn_q.weight``).
        a: ``lora_A`` (rank x in), float32.
        b: ``lora_B`` (out x rank), float32, rows in the GGUF's layout.
        alpha: the LoRA alpha (the scale is ``alpha / rank``, as peft and llama.cpp).
    """

    weight: str
    a: Any
    b: Any
    alpha: float

    @property
    def scale(self) -> float:
        return self.alpha / int(self.a.shape[0])

    def delta(self) -> Any:
        """``alpha / rank * b @ a``, out x in, float32."""
        return self.scale * (self.b @ self.a)


def base_shape(base_gguf: str | Path) -> dict[str, Any]:
    """Architecture, heads and blocks of a GGUF model (what the conversion needs)."""
    gguf = require("gguf", extra="train", purpose="writing a LoRA adapter GGUF")
    return shape_of(gguf.GGUFReader(str(base_gguf)), base_gguf)


def shape_of(reader: Any, base_gguf: str | Path) -> dict[str, Any]:
    """:func:`base_shape` from a ``gguf.GGUFReader`` already open on ``base_gguf``."""

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


def lora_deltas(adapter_dir: str | Path, shape: dict[str, Any]) -> Iterator[LoraTensors]:
    """The adapter's LoRA pairs in ``adapter_dir``, named and laid out as the GGUF base.

    Yields one :class:`LoraTensors` per adapted weight, in a stable order, with
    ``lora_b``'s rows permuted for the query and key projections of Llama GGUFs.

    Raises:
        ConfigurationError: an adapter llama.cpp cannot apply as is (DoRA, rsLoRA,
            per-module alphas, adapted embeddings), or an architecture not handled here.
    """
    safetensors_numpy = require(
        "safetensors.numpy", extra="train", purpose="reading a LoRA adapter"
    )
    gguf = require("gguf", extra="train", purpose="naming a LoRA adapter's GGUF tensors")
    import numpy as np

    folder = Path(adapter_dir)
    arch = str(shape["architecture"])
    if arch not in _PERMUTES_QK:
        raise ConfigurationError(
            f"LoRA GGUF export supports {sorted(_PERMUTES_QK)} models, not {arch!r}; serve "
            "the adapter with TransformersGenerator(lora=...) instead"
        )
    config = json.loads((folder / "adapter_config.json").read_text("utf-8"))
    if config.get("use_dora") or config.get("use_rslora"):
        raise ConfigurationError("llama.cpp applies plain LoRA only (not DoRA or rsLoRA)")
    if config.get("alpha_pattern"):
        raise ConfigurationError(
            f"{folder}: per-module LoRA alphas (alpha_pattern) cannot be exported: "
            "llama.cpp takes one alpha per adapter"
        )
    alpha = float(config["lora_alpha"])
    tensors = safetensors_numpy.load_file(str(folder / "adapter_model.safetensors"))
    names = gguf.get_tensor_name_map(
        {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], int(shape["n_blocks"])
    )
    found = 0
    for key in sorted(tensors):
        if ".lora_A." not in key:
            if ".lora_B." not in key:
                raise ConfigurationError(f"{folder}: unexpected adapter tensor {key!r}")
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        target = names.get_name(module)
        if target is None or target in ("token_embd", "output"):
            raise ConfigurationError(
                f"{folder}: no llama.cpp tensor for {module!r} in a {shape['n_blocks']}-block "
                f"{arch} model: was the adapter trained on another model?"
            )
        a = np.ascontiguousarray(tensors[key], dtype=np.float32)
        b = np.asarray(tensors[key.replace(".lora_A.", ".lora_B.")], dtype=np.float32)
        if _PERMUTES_QK[arch] and module.endswith("q_proj"):
            b = _permute(b, int(shape["n_head"]))
        elif _PERMUTES_QK[arch] and module.endswith("k_proj"):
            b = _permute(b, int(shape["n_head_kv"]))
        found += 1
        yield LoraTensors(f"{target}.weight", a, np.ascontiguousarray(b), alpha)
    if not found:
        raise ConfigurationError(f"{folder}: the adapter holds no LoRA tensors")


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
        ConfigurationError: an adapter llama.cpp cannot apply as is (see
            :func:`lora_deltas`), or an architecture not handled here.
    """
    gguf = require("gguf", extra="train", purpose="writing a LoRA adapter GGUF")
    if shape is None:
        if base is None:
            raise ConfigurationError("write_gguf_adapter needs base= (a GGUF) or shape=")
        shape = base_shape(base)
    pairs = list(lora_deltas(adapter_dir, shape))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with replacing(Path(out)) as partial:  # never a half-written adapter at out
        writer = gguf.GGUFWriter(str(partial), str(shape["architecture"]))
        writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, pairs[0].alpha)
        for pair in pairs:
            writer.add_tensor(f"{pair.weight}.lora_a", pair.a)
            writer.add_tensor(f"{pair.weight}.lora_b", pair.b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(out)
