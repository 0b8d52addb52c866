"""The examples run as shipped: the demo script and the notebook's code cells."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_demo_script_prints_cited_answers_and_a_refusal(
    tmp_path: Path,
    minilm,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    demo = runpy.run_path(str(EXAMPLES / "demo.py"))
    demo["main"](tmp_path / "kb")
    out = capsys.readouterr().out
    assert "added 4," in out
    assert out.count("Sources:") == 3
    assert "8443" in out
    assert "I don't have enough information" in out


def test_notebook_cells_run_in_order(
    minilm,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    nb = json.loads((EXAMPLES / "quickstart.ipynb").read_text(encoding="utf-8"))
    monkeypatch.chdir(EXAMPLES)
    namespace: dict[str, object] = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    out = capsys.readouterr().out
    assert "getting-started.md" in out
    assert "environments.csv" in out
    assert "I don't have enough information" in out
