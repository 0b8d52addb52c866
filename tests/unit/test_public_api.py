"""The public surface: curated, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys
import types

import ragkit


def test_all_is_sorted_and_matches_exports() -> None:
    # Submodules become attributes of the package once imported; they are not exports.
    public = {
        n
        for n in dir(ragkit)
        if not n.startswith("_") and not isinstance(getattr(ragkit, n), types.ModuleType)
    }
    assert public == set(ragkit.__all__) - {"__version__"}

    # isort-style order, as ruff's RUF022 keeps it: CONSTANTS, Classes, then the rest.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    assert list(ragkit.__all__) == sorted(ragkit.__all__, key=kind)


def test_import_ragkit_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, ragkit\n"
        "heavy = [m for m in ('torch', 'chromadb', 'faiss', 'sentence_transformers', "
        "'transformers', 'pypdf', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_ragkit_has_no_side_effects_on_logging_or_warnings() -> None:
    code = (
        "import logging, warnings\n"
        "before = (list(logging.getLogger().handlers), list(warnings.filters))\n"
        "import ragkit\n"
        "after = (list(logging.getLogger().handlers), list(warnings.filters))\n"
        "print(before == after)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
