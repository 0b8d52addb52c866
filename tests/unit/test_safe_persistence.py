"""Nothing read from a knowledge-base folder can run code: no pickle, no eval, no YAML."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from ragkit import RAG
from ragkit.errors import StoreError
from ragkit.testing import FakeEmbedder

SRC = Path(__file__).resolve().parents[2] / "src" / "ragkit"
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal", "yaml", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "__import__"}


def _problems(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        found += [f"imports {n}" for n in names if n in UNSAFE_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in UNSAFE_CALLS:
                found.append(f"calls {name}()")
            if name == "load" and isinstance(func, ast.Attribute):
                owner = getattr(func.value, "id", "")
                if owner == "torch":
                    found.append("calls torch.load()")
                if owner == "np":
                    pickle = [k for k in node.keywords if k.arg == "allow_pickle"]
                    safe = pickle and isinstance(pickle[0].value, ast.Constant)
                    if not safe or pickle[0].value.value is not False:  # type: ignore[attr-defined]
                        found.append("calls np.load() without allow_pickle=False")
    return [f"{path.relative_to(SRC)}:{p}" for p in found]


def test_no_module_deserializes_with_code_execution() -> None:
    problems = [p for path in sorted(SRC.rglob("*.py")) for p in _problems(path)]
    assert problems == []


def test_a_pickled_payload_in_a_kb_is_refused_not_run(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    with RAG(kb, store="memory", embedder=FakeEmbedder()) as rag:
        rag.add(tmp_path / "nothing-yet")
    folder = kb / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chunks.json").write_text('{"format": 1, "chunks": []}', encoding="ascii")
    payload = np.array([{"boom": 1}], dtype=object)  # saved with pickle inside the .npy
    np.save(folder / "vectors.npy", payload, allow_pickle=True)
    with pytest.raises(StoreError, match="Could not load"):
        RAG(kb, store="memory", embedder=FakeEmbedder())
