"""Step 5, merge: a LoRA adapter folded into a copy of its base GGUF.

``LlamaCppGenerator(lora=...)`` applies an adapter at run time: every adapted matrix
costs a second, low-rank product per token. Merging writes a new GGUF whose adapted
weights are ``W + alpha / r * B A``, which loads like any model and needs no adapter:
``LlamaCppGenerator("merged.gguf")``, ``ragkit ask --llm merged.gguf``. Its speed is
that of the type its weights are stored in, not the base's: for SmolLM2-135M (Q4_1)
merged as Q8_0, prompt processing ran 1.6x faster than the base's and decoding about
10 % slower (docs/benchmarks/finetune_generator.md).

Every other tensor and all metadata (tokenizer, chat template) are copied byte for
byte. An adapted weight is read back to float32 (what transformers + peft trained
against when they read the GGUF), the delta is added, and the sum is stored as
``weight_type``: ``auto`` (the default) keeps a float or 8-bit base's own type and
stores a weight that was quantized below 8 bits as ``q8_0``, because re-quantizing to
a 4-bit type can round away a small delta (docs/benchmarks/finetune_generator.md
measures how much); ``same`` keeps the base's type whatever it is; ``q8_0``, ``f16``
and ``f32`` force one.

Example:
    >>> merge_gguf("out/", "out/merged.gguf")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit._files import replacing
from ragkit.errors import ConfigurationError
from ragkit.training.generator.gguf_adapter import lora_deltas, shape_of

__all__ = ["MERGED", "WEIGHT_TYPES", "merge_gguf"]

#: The file name ``ragkit finetune merge`` writes inside an adapter folder by default.
MERGED = "merged.gguf"

#: The types an adapted weight can be stored as (``same``: the base's own type).
WEIGHT_TYPES = ("auto", "same", "q8_0", "f16", "f32")

#: Base types ``auto`` keeps (float, or 8-bit blocks); any other becomes Q8_0.
_KEPT = ("F32", "F16", "BF16", "Q8_0")


def _recorded_base(folder: Path) -> Path | None:
    """The base GGUF ``finetune_generator`` recorded in the adapter's report, if any."""
    from ragkit.training.generator.pipeline import REPORT

    report = folder / REPORT
    if not report.is_file():
        return None
    base = json.loads(report.read_text("utf-8")).get("base")
    return Path(base) if base and str(base).endswith(".gguf") else None


def merge_gguf(
    adapter_dir: str | Path,
    out: str | Path,
    *,
    base: str | Path | None = None,
    weight_type: str = "auto",
    scale: float = 1.0,
) -> Path:
    """Write ``out``: the base GGUF with the adapter in ``adapter_dir`` merged in.

    Args:
        adapter_dir: a peft adapter folder (``ragkit finetune generator --out``).
        out: the merged GGUF to write (not the base itself).
        base: the base GGUF (default: the one the adapter's report names).
        weight_type: how adapted weights are stored (see :data:`WEIGHT_TYPES`).
        scale: how strongly the adapter applies, as ``LlamaCppGenerator(lora_scale=)``.

    Raises:
        ConfigurationError: no base GGUF known, ``out`` is the base, an unknown
            ``weight_type``, an adapter tensor the base does not have, or an adapter
            llama.cpp cannot apply (see :func:`lora_deltas`).
    """
    gguf = require("gguf", extra="train", purpose="merging a LoRA adapter into a GGUF")
    import numpy as np

    folder = Path(adapter_dir)
    if weight_type not in WEIGHT_TYPES:
        raise ConfigurationError(f"weight_type must be one of {WEIGHT_TYPES}, not {weight_type!r}")
    base_path = Path(base) if base is not None else _recorded_base(folder)
    if base_path is None:
        raise ConfigurationError(
            f"{folder}: no base GGUF to merge into (no finetune-report.json names one); "
            "pass it: base= in Python, --base PATH.gguf on the command line"
        )
    if not base_path.is_file():
        raise ConfigurationError(f"{base_path}: no such base model file")
    if base_path.suffix != ".gguf":
        raise ConfigurationError(f"{base_path}: not a GGUF file; merging needs a GGUF base")
    out_path = Path(out)
    if out_path.exists() and out_path.resolve() == base_path.resolve():
        raise ConfigurationError(f"{out_path}: will not overwrite the base model")
    reader = gguf.GGUFReader(str(base_path))  # read once: shape, tensors and metadata
    deltas = {pair.weight: pair for pair in lora_deltas(folder, shape_of(reader, base_path))}
    tensors = {t.name: t for t in reader.tensors}
    missing = sorted(set(deltas) - set(tensors))
    if missing:
        raise ConfigurationError(
            f"{folder}: adapter weights {missing[:3]} are not in {base_path}: "
            "was it trained on another model?"
        )
    for name, pair in deltas.items():
        want = tuple(int(n) for n in reversed(tensors[name].shape))
        got = (int(pair.b.shape[0]), int(pair.a.shape[1]))
        if got != want:
            raise ConfigurationError(
                f"{folder}: the adapter changes {name} as {got[0]} x {got[1]}, but "
                f"{base_path} holds it as {want[0]} x {want[1]}: was it trained on another model?"
            )

    def stored_type(tensor: Any) -> Any:
        if weight_type == "same" or (weight_type == "auto" and tensor.tensor_type.name in _KEPT):
            return tensor.tensor_type
        if weight_type == "auto":
            return gguf.GGMLQuantizationType.Q8_0
        return gguf.GGMLQuantizationType[weight_type.upper()]

    def merged(tensor: Any) -> Any:
        weights = gguf.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        rows, cols = weights.shape[0], weights.shape[-1]
        weights = weights.reshape(rows, cols) + scale * deltas[tensor.name].delta()
        return gguf.quantize(weights, stored_type(tensor))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out_path) as partial:  # never a half-written model at out
        _copy(reader, partial, {name: stored_type(tensors[name]) for name in deltas}, merged)
    return out_path


def _copy(reader: Any, path: Path, replaced: dict[str, Any], compute: Any) -> None:
    """Write the GGUF ``reader`` reads to ``path``: all metadata and every tensor as it
    is, except those named in ``replaced`` (name -> the type to store), whose data
    ``compute(tensor)`` makes, one at a time."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), str(reader.fields["general.architecture"].contents()))
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the writer writes these itself
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        if tensor.name in replaced:
            kind = replaced[tensor.name]
            rows, cols = (int(n) for n in reversed(tensor.shape))
            dtype = np.dtype({"F32": np.float32, "F16": np.float16}.get(kind.name, np.uint8))
            stored: tuple[int, ...] = (rows, cols)
            if dtype == np.uint8:  # blocks of a quantized type, as bytes
                stored = gguf.quant_shape_to_byte_shape(stored, kind)
            nbytes = stored[0] * stored[1] * dtype.itemsize
            writer.add_tensor_info(tensor.name, stored, dtype, nbytes, kind)
        else:
            data = tensor.data
            writer.add_tensor_info(
                tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        data = compute(tensor) if tensor.name in replaced else tensor.data
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
