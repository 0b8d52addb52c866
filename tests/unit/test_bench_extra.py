"""`pip install -e ".[bench]"` installs every package that bench/*.py imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
#: Modules whose distribution has another name, or that come with another package.
PROVIDED_BY = {
    "faiss": "faiss-cpu",
    "torch": "sentence-transformers",  # its dependency; installed CPU-only first by hand
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
}
#: Modules of this repository that bench scripts import by path.
LOCAL = {"ragkit", "milvus_server"}


def _requirements(extra: str, project: dict[str, object], seen: set[str]) -> set[str]:
    """Distribution names an extra installs, ragkit[...] self-references expanded."""
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    names: set[str] = set()
    for requirement in extras[extra]:
        name = re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0].lower()
        if name == "ragkit":
            for inner in re.search(r"\[(.*)\]", requirement).group(1).split(","):  # type: ignore[union-attr]
                if inner not in seen:
                    seen.add(inner)
                    names |= _requirements(inner.strip(), project, seen)
        else:
            names.add(name)
    return names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def test_the_bench_extra_covers_every_import_of_the_benchmarks() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = _requirements("bench", project, {"bench"})
    installed |= {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    scripts = sorted((ROOT / "bench").glob("*.py"))
    local = LOCAL | {p.stem for p in scripts}
    missing = {}
    for script in scripts:
        for module in _imports(script) - local - set(sys.stdlib_module_names):
            if module.startswith("bench_"):
                continue  # helper modules of bench/ itself (bench_<name>.py)
            distribution = PROVIDED_BY.get(module, module.replace("_", "-")).lower()
            if distribution not in installed:
                missing[module] = script.name
    assert not missing, f"bench imports not installed by the bench extra: {missing}"
    assert {"langchain-chroma", "langchain-huggingface", "rank-bm25"} <= installed
