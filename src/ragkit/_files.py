"""Files written whole: a crash, a full disk or an error mid-write leaves the old file or
the new one at the target, never half of one.

The stores' snapshots, the kb manifest, the bundled tiktoken files and the GGUF models
the fine-tuning writes all go through :func:`replacing`: the content is written to a
temporary file beside the target (same folder, so the final move is one ``rename``),
flushed to disk, then moved onto the target. The temporary name carries the process id,
so two processes writing the same target never write into each other's file; an error
removes it, and the next write to the target removes those left by processes that died
before their rename.
"""

from __future__ import annotations

import contextlib
import glob
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
    _remove_stale(target)
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


def _remove_stale(target: Path) -> None:
    """Remove the temporary files of ``target`` whose process is gone (killed before
    its rename); a live writer's file is left alone. POSIX only: elsewhere there is no
    harmless way to ask whether a process id is alive."""
    if os.name != "posix":
        return
    suffix = ".tmp"
    for path in target.parent.glob(f"{glob.escape(target.name)}.*{suffix}"):
        pid = path.name[len(target.name) + 1 : -len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid)
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def write_whole(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through :func:`replacing`.

    Raises:
        OSError: the file could not be written (``target`` is unchanged).
    """
    with replacing(target) as tmp:
        tmp.write_bytes(data)
