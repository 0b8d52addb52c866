"""Which CPUs get bfloat16 embeddings, and the precision argument's checks."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from ragkit.embeddings import SentenceTransformerEmbedder
from ragkit.embeddings._cpu import native_bf16
from ragkit.errors import ConfigurationError

LINUX = platform.system() == "Linux"


def cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    block = f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
    path.write_text(block * 2)
    return str(path)


@pytest.mark.skipif(not LINUX, reason="reads /proc/cpuinfo flags on Linux only")
@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_a_cpu_with_native_bfloat16_is_recognised(tmp_path: Path, flag: str) -> None:
    assert native_bf16(cpuinfo(tmp_path, f"fpu sse2 avx2 avx512f {flag} avx512_vnni"))


@pytest.mark.skipif(not LINUX, reason="reads /proc/cpuinfo flags on Linux only")
def test_avx512_without_bfloat16_is_not_enough(tmp_path: Path) -> None:
    # avx512bw/avx512_vnni CPUs emulate bfloat16, which is slower than float32
    assert not native_bf16(cpuinfo(tmp_path, "fpu sse2 avx2 avx512f avx512bw avx512_vnni"))


def test_no_cpuinfo_means_float32(tmp_path: Path) -> None:
    assert not native_bf16(str(tmp_path / "missing"))


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="precision 'float16'"):
        SentenceTransformerEmbedder(precision="float16")  # type: ignore[arg-type]


def test_float32_and_other_devices_never_autocast() -> None:
    assert not SentenceTransformerEmbedder(precision="float32").bf16
    assert not SentenceTransformerEmbedder(device="cuda").bf16  # "auto" decides on CPUs only
    assert SentenceTransformerEmbedder(precision="bfloat16").bf16
