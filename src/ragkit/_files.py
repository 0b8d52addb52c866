"""Files written whole: a crash, a full disk or an error mid-write leaves the old file or
the new one at the target, never half of one.

The stores' snapshots, the kb manifest, the bundled tiktoken files and the GGUF models
the fine-tuning writes all go through :func:`replacing`: the content is written to a
temporary file beside the target (same folder, so the final move is one ``rename``),
flushed to disk, then moved onto the target. The temporary name carries the process id,
so two processes writing the same target never write into each other's file; an error
removes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replacing", "write_whole"]


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; when the block finishes, the file
    is flushed to disk and moved onto ``target``. When the block raises, ``target`` is
    left as it was and the temporary file is removed.

    Example:
        >>> with replacing(Path("model.gguf")) as partial:  # doctest: +SKIP
        ...     writer.write_to(partial)
    """
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_whole(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through :func:`replacing`.

    Raises:
        OSError: the file could not be written (``target`` is unchanged).
    """
    with replacing(target) as tmp:
        tmp.write_bytes(data)
