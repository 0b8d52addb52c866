"""A MemoryStore save stopped at any step leaves a folder that opens, old or new."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.stores import MemoryStore
from ragkit.testing.store_contract import make_chunk, unit_vectors


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.mark.parametrize(("renames_done", "expected"), [(0, "old"), (1, "old"), (2, "new")])
def test_a_save_stopped_before_any_rename_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames_done: int, expected: str
) -> None:
    old_vectors, new_vectors = unit_vectors(2, 4, seed=1), unit_vectors(1, 4, seed=2)
    MemoryStore(path=tmp_path).upsert([make_chunk("a"), make_chunk("b")], old_vectors)

    # A save renames three files into place (new vectors under a second name, the
    # header, the vectors); die just before rename number renames_done + 1.
    real_replace = os.replace
    done = 0

    def replace(src: Any, dst: Any) -> None:
        nonlocal done
        if done == renames_done:
            raise Crash
        done += 1
        real_replace(src, dst)

    store = MemoryStore(path=tmp_path)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Crash):
        store.upsert([make_chunk("c")], new_vectors)
    monkeypatch.undo()

    reopened = MemoryStore(path=tmp_path)
    if expected == "old":
        assert reopened.ids() == ["a", "b"]
    else:
        assert reopened.ids() == ["a", "b", "c"]
        hit = reopened.search(new_vectors[0], k=1)[0]
        assert hit.chunk.id == "c"
        assert hit.score == pytest.approx(1.0, abs=1e-5)
    # The next save tidies up, and the folder holds the two usual files again.
    reopened.upsert([make_chunk("d")], unit_vectors(1, 4, seed=3))
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp"))
    assert names == ["chunks.json", "vectors.npy"]
    assert np.load(tmp_path / "vectors.npy").shape == (len(reopened.ids()), 4)
