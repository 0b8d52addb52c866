"""What the CPU can do natively, read once per process."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["native_bf16"]

#: x86 feature flags of CPUs that multiply bfloat16 in hardware (Intel AMX, AVX512-BF16
#: on Intel Cooper Lake and later and on AMD Zen 4 and later).
_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.cache
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux x86 only; False elsewhere)."""
    if platform.system() != "Linux":
        return False
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(_has_flags(line) for line in text.splitlines())


def _has_flags(line: str) -> bool:
    key, _, value = line.partition(":")
    return key.strip() == "flags" and not _BF16_FLAGS.isdisjoint(value.split())
