"""Files written whole (`ragkit._files`): the old file or the new one, never half."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragkit._files import replacing, write_whole


def test_write_whole_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    write_whole(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_partial_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.gguf"
    target.write_bytes(b"the old model")

    def write_half() -> None:
        with replacing(target) as partial:
            partial.write_bytes(b"half of a new mod")
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_half()
    assert target.read_bytes() == b"the old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_a_crash_before_the_move_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move is the commit: if the process dies at it, readers still see the old file."""
    target = tmp_path / "manifest.json"
    target.write_bytes(b'{"v": 1}')

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_whole(target, b'{"v": 2}')
    assert target.read_bytes() == b'{"v": 1}'


def test_the_partial_file_is_named_by_the_process_beside_its_target(tmp_path: Path) -> None:
    """Two processes writing one target never write into the same temporary file, and the
    final move stays inside one folder (one rename)."""
    target = tmp_path / "cache" / "blob"
    target.parent.mkdir()
    with replacing(target) as partial:
        assert partial.parent == target.parent
        assert str(os.getpid()) in partial.name
        partial.write_bytes(b"x")
    assert target.read_bytes() == b"x"


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX only")
def test_a_write_removes_the_partial_files_of_dead_writers_only(tmp_path: Path) -> None:
    """A writer killed before its rename leaves its temporary file behind; the next
    write to the same target removes it, but not a live writer's, nor another file's."""
    target = tmp_path / "vectors.npy"
    dead = tmp_path / "vectors.npy.4194305.tmp"  # above Linux's largest pid_max (2**22)
    live = tmp_path / f"vectors.npy.{os.getppid()}.tmp"
    other = tmp_path / "chunks.json.4194305.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    write_whole(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not dead.exists()
    assert live.exists()
    assert other.exists()
